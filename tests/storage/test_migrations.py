"""Migrations: an empty database to head, an older revision to head, schema == metadata."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from coinharvest.storage import Store
from coinharvest.storage.database import create_engine
from coinharvest.storage.migrate import current_revision, head_revision, upgrade
from coinharvest.storage.schema import metadata


def _diff(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


async def test_an_empty_database_is_migrated_to_head_matching_the_schema(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        assert await current_revision(engine) is None
        assert await upgrade(engine) == head_revision() == "0003"
        assert await upgrade(engine) == "0003"  # already there: nothing happens
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_an_older_revision_is_upgraded_keeping_its_data(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        assert await upgrade(engine, "0001") == "0001"
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO runs (run_id, trigger, status, started_at, coins_total, coins_ok, "
                    "coins_failed, coins_deferred, requests, rate_limited, retries, max_in_flight, "
                    "store_errors) VALUES ('old', 'manual', 'completed', '2026-01-01 00:00:00', "
                    "11, 11, 0, 0, 11, 0, 0, 5, 0)"
                )
            )
        # Opening a store applies the pending migration on start.
        async with Store(engine) as store, store.engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT status, coins_ok, coins_unsaved FROM runs"))
            ).one()
            assert tuple(row) == ("completed", 11, 0)
            assert await conn.run_sync(_diff) == []
        assert await current_revision(engine) == "0003"
    finally:
        await engine.dispose()
