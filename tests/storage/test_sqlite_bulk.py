"""SQLite's short cuts to aiosqlite (`sqlite_bulk`, `database._begin`, `_reset_sqlite`)
keep SQLAlchemy's contract: the same values stored, SQLAlchemy's exceptions, listeners
called, and no transaction left open on a connection back in the pool."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from coinharvest.models import CoinResult, CoinStatus, Observation
from coinharvest.storage.database import open_database
from coinharvest.storage.schema import coin_results, observations, runs
from coinharvest.storage.sqlite_bulk import execute_many
from coinharvest.storage.writes import (
    RunStart,
    _observation_row,
    _result_row,
    _run_values,
    insert_run,
    upsert,
)

from .storekit import T0


async def test_many_rows_store_what_sqlalchemy_stores(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    seen: list[str] = []
    event.listen(db.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    at = T0 + timedelta(microseconds=250)
    try:
        async with db.begin() as conn:
            for run_id in ("bulk", "sqlalchemy"):
                start = RunStart(run_id, "manual", T0, 1, "test")  # whole seconds
                await insert_run(conn, start)
                result = CoinResult("BTC", "Bitcoin", CoinStatus.OK, at, 0.1, 1, ("cg",), [])
                await conn.execute(
                    upsert(conn, coin_results, ["run_id", "symbol"], []),
                    [_result_row(run_id, result, 2, at)],
                )
            for run_id, execute in (("bulk", _bulk), ("sqlalchemy", _sqlalchemy)):
                rows = [
                    _observation_row(run_id, "BTC", Observation("BTC", "cg", m, v, T0), at)
                    for m, v in (("price_usd", 1.5), ("market_cap_usd", None))
                ]
                await execute(conn, upsert(conn, observations, ["id"], []), rows)
        async with db.connect() as conn:
            stored = list(await conn.execute(text("SELECT * FROM observations ORDER BY id")))
        by_run = [[r[2:] for r in stored if r[1] == run_id] for run_id in ("bulk", "sqlalchemy")]
        assert by_run[0] == by_run[1] and len(by_run[0]) == 2  # the same text, numbers, NULLs
        assert sum("INSERT INTO observations" in s for s in seen) == 2  # listeners saw both
    finally:
        await db.dispose()


async def _bulk(conn: AsyncConnection, stmt: Any, rows: list[dict[str, Any]]) -> None:
    await execute_many(conn, stmt, rows)


async def _sqlalchemy(conn: AsyncConnection, stmt: Any, rows: list[dict[str, Any]]) -> None:
    await conn.execute(stmt, rows)


async def test_a_refused_row_raises_sqlalchemys_error(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    try:
        row: dict[str, Any] = _run_values(RunStart("r", "manual", T0, 1, "test"))
        with pytest.raises(IntegrityError):
            async with db.begin() as conn:
                await execute_many(
                    conn, upsert(conn, runs, ["run_id"], []), [row | {"trigger": None}]
                )
    finally:
        await db.dispose()


async def test_a_connection_returned_in_a_transaction_is_rolled_back(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", pool_size=1)
    try:
        async with db.connect() as conn:  # SQLAlchemy starts no transaction: the pool resets
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.execute("BEGIN")
            await driver.execute(
                'INSERT INTO runs (run_id, "trigger", status, started_at, '
                "coins_total, coins_ok, coins_failed, coins_deferred, requests, "
                "rate_limited, retries, max_in_flight, store_errors) "
                "VALUES ('x', 'manual', 'running', '', 0, 0, 0, 0, 0, 0, 0, 0, 0)"
            )
            assert driver.in_transaction
        async with db.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None and not driver.in_transaction
            assert (await conn.execute(text("SELECT count(*) FROM runs"))).scalar() == 0
    finally:
        await db.dispose()
