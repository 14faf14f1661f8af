"""Opening storage from settings: a writing `Store` for runs, a migrated engine for reads.

::

    async with store_from_settings(settings) as store:      # collect / run / demo
        await build_engine(settings, sources, store).run(coins)

    async with reader(settings) as db:                       # runs / latest / history / export
        await queries.list_runs(db, limit=20)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.config import Settings
from coinharvest.storage.database import database_url, open_database
from coinharvest.storage.store import Store, WritePolicy

__all__ = ["open_store", "reader", "store_from_settings"]


async def open_store(settings: Settings, *, policy: WritePolicy | None = None) -> Store:
    """An opened `Store` for the configured database; close it with ``await store.aclose()``.

    :raises ConfigError: bad ``DATABASE_URL`` or missing driver.
    :raises StoreError: unreachable, read-only or unmigratable database (one line).
    """
    store = await Store.from_url(database_url(settings), policy=policy)
    try:
        await store.open()
    except BaseException:
        await store.aclose()
        raise
    return store


@asynccontextmanager
async def store_from_settings(
    settings: Settings, *, policy: WritePolicy | None = None
) -> AsyncIterator[Store]:
    """`open_store` as an async context manager (closes the store on exit)."""
    store = await open_store(settings, policy=policy)
    try:
        yield store
    finally:
        await store.aclose()


@asynccontextmanager
async def reader(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A migrated engine for reading; never marks runs (a live service may own them).

    :raises ConfigError / StoreError: as `open_store`.
    """
    engine = await open_database(database_url(settings))
    try:
        yield engine
    finally:
        await engine.dispose()
