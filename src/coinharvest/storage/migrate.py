"""Schema migrations (Alembic), run on coinharvest's own async engine.

`upgrade(engine)` brings a database to the newest revision (or to a given one) in one
transaction; on PostgreSQL an advisory lock makes concurrent starts (two replicas, the
service and a CLI command) take turns instead of racing to create the same tables.
Idempotent: a database already at the target is left untouched (no write at all, so a
read-only database that is up to date can still be read).

Alembic is imported only when a migration runs: the revision check reads
``alembic_version`` with one query and the head from the migration files' names
(``NNNN_*.py``, numbered in order; a test checks it against Alembic's own view), which keeps
read-only commands such as ``coinharvest latest`` fast to start.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "head_revision", "upgrade"]

#: Where ``env.py`` and ``versions/`` live (packaged with coinharvest).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Arbitrary constant key of the PostgreSQL advisory lock held while migrating.
_PG_LOCK_KEY = 0x636F696E  # "coin"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no ``alembic.ini`` needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision id of the packaged migrations (the highest ``NNNN_*.py``)."""
    numbers = sorted(p.name[:4] for p in (MIGRATIONS_DIR / "versions").glob("[0-9]" * 4 + "_*.py"))
    assert numbers, "no migrations packaged"
    return numbers[-1]


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; None for an empty (never migrated) database."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Migrate the database to `revision` (default: the newest) and return where it is now.

    Raises whatever the database raises (callers translate it with `failures.translate`).
    """
    target = head_revision() if revision == "head" else revision
    if await current_revision(engine) == target:
        return target
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        await conn.run_sync(_upgrade, revision)
    return await current_revision(engine)


def _current(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def _upgrade(conn: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, revision)
