"""Migrations: an empty database to head, older revisions to head keeping their data, and a
migrated schema equal to `metadata`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.engine import Connection

from coinharvest.models import LearnedLimit
from coinharvest.storage import Store, queries
from coinharvest.storage.database import create_engine
from coinharvest.storage.migrate import current_revision, head_revision, upgrade
from coinharvest.storage.schema import UTCDateTime, metadata
from coinharvest.storage.shared_limiter_sql import TABLES as SHARED_LIMITER_TABLES


def _in_metadata(obj: Any, name: str | None, type_: str, reflected: bool, _: Any) -> bool:
    """The shared limiter's tables are PostgreSQL-only and outside `metadata` (UNLOGGED is not
    expressible there; only its PL/pgSQL functions use them): not a difference."""
    return not (type_ == "table" and name in SHARED_LIMITER_TABLES)


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"include_object": _in_metadata})
    return list(compare_metadata(context, metadata))


async def test_an_empty_database_is_migrated_to_head_matching_the_schema(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        assert await current_revision(engine) is None
        assert await upgrade(engine) == head_revision() == "0007"
        assert await upgrade(engine) == "0007"  # already there: nothing happens
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
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_revision_0003_is_upgraded_to_0004_keeping_runs_coins_and_jobs(db_url: str) -> None:
    engine = create_engine(db_url)
    started = datetime.now(UTC) - timedelta(hours=1)
    try:
        assert await upgrade(engine, "0003") == "0003"
        async with engine.begin() as conn:
            for sql in _AT_0003:
                await conn.execute(_with_time(sql), {"at": started} if ":at" in sql else {})
        async with Store(engine) as store:  # opening migrates to 0004 and on
            assert await current_revision(engine) == head_revision()
            async with store.engine.connect() as conn:
                assert await conn.run_sync(_diff) == []
                notes = (await conn.execute(text("SELECT notes FROM coin_results"))).scalar_one()
                assert notes == "coingecko: ath: missing"
            detail = await queries.run_detail(store.engine, "old")
            assert detail is not None and detail.run.coins_ok == 1 and detail.run.requests == 1
            assert [(j.source, j.started_s) for j in detail.jobs] == [("coingecko", 5.0)]
            # The new revision works on the old rows and is empty until something is learned.
            assert await store.requests_since(started) == {"coingecko": 1}
            assert await store.load_learned_limits() == []
            learned = LearnedLimit("coingecko", "", 2.0, 25.0, None, datetime.now(UTC))
            await store.save_learned_limits([learned])
            assert await store.load_learned_limits() == [learned]
    finally:
        await engine.dispose()


def _with_time(sql: str) -> TextClause:
    """`sql` whose ``:at`` (if any) is bound as the schema binds times (aware UTC)."""
    stmt = text(sql)
    return stmt.bindparams(bindparam("at", type_=UTCDateTime())) if ":at" in sql else stmt


#: One run, one coin with notes and one request, as revision 0003 stored them.
_AT_0003 = [
    "INSERT INTO runs (run_id, trigger, status, started_at, finished_at, coins_total, coins_ok, "
    "coins_failed, coins_deferred, requests, rate_limited, retries, max_in_flight, store_errors, "
    "coins_unsaved) VALUES ('old', 'schedule', 'completed', :at, :at, 1, 1, 0, 0, 1, 0, 0, 1, "
    "0, 0)",
    "INSERT INTO coin_results (run_id, symbol, name, status, started_at, duration_s, attempts, "
    "sources, notes, observation_count, stored_at) VALUES ('old', 'BTC', 'Bitcoin', 'ok', :at, "
    "0.5, 1, 'coingecko', 'coingecko: ath: missing', 0, :at)",
    "INSERT INTO job_events (run_id, job_id, attempt, source, symbols, queued_s, started_s, "
    "ended_s, status) VALUES ('old', 1, 1, 'coingecko', 'BTC', 0.0, 5.0, 5.5, 'ok')",
]


def test_the_head_read_from_file_names_is_alembics_head() -> None:
    """`head_revision` reads the newest ``NNNN_*.py`` (no Alembic import at start-up); it
    must agree with Alembic's own script directory."""
    from alembic.script import ScriptDirectory

    from coinharvest.storage.migrate import alembic_config, head_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
