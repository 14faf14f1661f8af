"""Retention on SQLite and PostgreSQL: exactly the old rows go, in batches; the newest value
of each (coin, metric) stays; job events outlive a short retention (quotas). Fixed times."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from serieskit import T0, fill_run, secs
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from coinharvest.storage import open_database
from coinharvest.storage.queries import latest_values
from coinharvest.storage.retention import Pruned, prune, prune_after_run
from coinharvest.storage.schema import coin_results, job_events, observations

DAY = timedelta(days=1)


async def count(db: AsyncEngine, table: object) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def fill(db: AsyncEngine) -> None:
    """Ten daily runs (day 0..9) of 25 BTC points each and 3 job events; ETH only on day 0."""
    for d in range(10):
        at = T0 + d * DAY
        await fill_run(db, f"r{d}", at, [(at + secs(i), d * 100 + i) for i in range(25)], jobs=3)
    await fill_run(db, "eth", T0, [(T0 + secs(5), 7.0)], symbol="ETH")


async def test_prune_deletes_exactly_the_old_rows_in_batches(db_url: str) -> None:
    db = await open_database(db_url)
    deletes: list[str] = []

    def record(conn: object, cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)

    try:
        await fill(db)
        before = await latest_values(db, now=T0)
        now, cutoff = T0 + 100 * DAY, T0 + 4 * DAY  # runs of days 0..3 are old
        dry = await prune(db, cutoff, now=now, batch=7, dry_run=True)
        assert dry == Pruned(observations=100, coin_results=4, job_events=13)
        assert await count(db, observations) == 251  # a dry run deletes nothing
        event.listen(db.sync_engine, "before_cursor_execute", record)
        pruned = await prune(db, cutoff, now=now, batch=7)
        event.remove(db.sync_engine, "before_cursor_execute", record)
        assert pruned == dry
        # 100 observations in batches of 7: 15 statements (the last deletes 2), 4 coin
        # rows: 1, 13 job events: 2
        assert len(deletes) == 15 + 1 + 2
        async with db.connect() as conn:
            kept = await conn.execute(select(observations.c.value, observations.c.symbol))
            values = sorted((r.symbol, r.value) for r in kept)
        assert values == [("BTC", float(d * 100 + i)) for d in range(4, 10) for i in range(25)] + [
            ("ETH", 7.0)  # old, but the newest ETH value: kept, as is its coin row
        ]
        assert (
            await count(db, coin_results) == 7 and await count(db, job_events) == 18
        )  # 3 x days 4..9
        assert await latest_values(db, now=T0) == before
        assert await prune(db, cutoff, now=now, batch=7) == Pruned(0, 0, 0)
    finally:
        await db.dispose()


async def test_job_events_stay_for_the_quota_month(db_url: str) -> None:
    db = await open_database(db_url)
    try:
        await fill(db)
        # retention of 2 days, "now" at day 10: observations of days 0..7 go, job events of
        # runs within the last 32 days stay
        pruned = await prune(db, T0 + 8 * DAY, now=T0 + 10 * DAY)
        assert pruned == Pruned(observations=200, coin_results=8, job_events=0)
        assert await count(db, job_events) == 31
    finally:
        await db.dispose()


async def test_prune_after_run_is_off_at_0_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="coinharvest.storage.retention")
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    try:
        await fill(db)
        later = T0 + 60 * DAY  # a frozen "now": every filled day is over 30 (and 32) days old
        assert await prune_after_run(db, 0, now=later) is None
        pruned = await prune_after_run(db, 30, now=later)
        assert pruned == Pruned(observations=249, coin_results=9, job_events=31)
        assert "pruned 249 observations" in caplog.text
    finally:
        await db.dispose()
    broken = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    assert await prune_after_run(broken, 30, now=T0) is None  # logged, not raised
    assert "pruning data older than 30 days failed" in caplog.text
    await broken.dispose()
