"""Alembic environment: runs migrations on a connection coinharvest hands in, or on a URL.

Two ways in:

- from coinharvest (`coinharvest.storage.migrate`): the caller opens an async connection,
  and inside ``AsyncConnection.run_sync`` puts the sync connection in
  ``config.attributes["connection"]``; migrations run on it, in the caller's transaction;
- from the ``alembic`` command: the URL comes from ``-x url=...`` or ``DATABASE_URL``; an
  async engine is created for it and the migrations run through ``run_sync``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from coinharvest.storage.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_url(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("no database: pass -x url=... or set DATABASE_URL")
    return url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    _run(shared)
else:
    asyncio.run(_run_on_url(_url()))
