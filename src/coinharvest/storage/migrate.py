"""Schema migrations (Alembic), run on coinharvest's own async engine.

`upgrade(engine)` brings a database to the newest revision (or to a given one) in one
transaction; on PostgreSQL an advisory lock makes concurrent starts (two replicas, the
service and a CLI command) take turns instead of racing to create the same tables.
Idempotent: a database already at the target is left untouched (no write at all, so a
read-only database that is up to date can still be read).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "head_revision", "upgrade"]

#: Where ``env.py`` and ``versions/`` live (packaged with coinharvest).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Arbitrary constant key of the PostgreSQL advisory lock held while migrating.
_PG_LOCK_KEY = 0x636F696E  # "coin"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision id of the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations packaged"
    return head


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
    return MigrationContext.configure(conn).get_current_revision()


def _upgrade(conn: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, revision)
