"""Requests sent since a time (daily and monthly quotas), on SQLite and a real PostgreSQL.

Runs and their job timelines are written through the store's `ResultSink` calls, at times
relative to now; the boundary has microseconds, so it must be honoured to the microsecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.models import JobRecord, JobStatus, RunStatus, RunSummary
from coinharvest.storage import Store
from coinharvest.storage.usage import MAX_RUN_SPAN, requests_query, requests_since

from .storekit import FAST, result

OK, LIMITED, DEFERRED = JobStatus.OK, JobStatus.RATE_LIMITED, JobStatus.DEFERRED


def job(
    job_id: int,
    attempt: int,
    started_s: float | None,
    *,
    source: str = "coingecko",
    status: JobStatus | None = None,
) -> JobRecord:
    """An attempt for coin A; `started_s` None is one that never started (deferred)."""
    ended = None if started_s is None else started_s + 0.25
    status = status or (OK if started_s is not None else DEFERRED)
    return JobRecord(job_id, source, ("A",), attempt, 0.0, started_s, ended, status)


async def record_run(
    store: Store, run_id: str, started_at: datetime, jobs: Sequence[JobRecord], *, finish: bool
) -> None:
    """A run as the engine reports it; left ``running`` (only its coin stored) unless `finish`."""
    await store.run_started(run_id, "manual", started_at, [])
    await store.jobs_recorded(run_id, jobs)
    await store.coin_completed(run_id, result("A", at=started_at))
    if finish:
        summary = RunSummary(
            run_id, "manual", RunStatus.COMPLETED, started_at, 1.0, 1, 1, 0, 0,
            requests=sum(j.started_s is not None for j in jobs), rate_limited=0, retries=0,
            max_in_flight=1, jobs=list(jobs),
        )  # fmt: skip
        await store.run_finished(summary)


async def test_requests_are_counted_from_the_boundary_on(store: Store, db_url: str) -> None:
    since = datetime.now(UTC) - timedelta(hours=2)  # microseconds and all
    s = timedelta(seconds=1)
    # Straddles the boundary: started 30 s before it; attempts before, at, after it.
    straddling = [
        job(1, 1, 10.0, status=LIMITED),
        job(1, 2, 29.999_999),  # 1 µs before the boundary
        job(2, 1, 30.0),  # exactly at it: counts
        job(3, 1, 45.5),
        job(4, 1, None),  # deferred: never sent
        job(5, 1, 100.0, source="blockchair"),
    ]
    await record_run(store, "straddling", since - 30 * s, straddling, finish=True)
    # A run of three days: only its last attempt comes after the boundary.
    long_ago = since - timedelta(days=3)
    await record_run(
        store, "long", long_ago, [job(1, 1, 5.0), job(2, 1, 3 * 86_400 + 5.0)], finish=True
    )
    # Entirely before the boundary.
    await record_run(
        store, "before", since - 2 * 60 * s, [job(1, 1, 1.0), job(2, 1, 90.0)], finish=True
    )
    # Started after it, still running in another process: its stored coin's attempts count.
    async with await Store.from_url(db_url, policy=FAST) as other:
        later = [job(1, 1, 0.5, status=LIMITED), job(1, 2, 3.0), job(2, 1, None)]
        await record_run(other, "later", since + 10 * 60 * s, later, finish=False)

    assert await store.requests_since(since) == {"coingecko": 2 + 1 + 2, "blockchair": 1}
    micro = timedelta(microseconds=1)
    assert await store.requests_since(since - micro) == {"coingecko": 6, "blockchair": 1}
    assert await store.requests_since(since + micro) == {"coingecko": 4, "blockchair": 1}
    # Read-only commands count the same without a store.
    assert await requests_since(store.engine, since) == await store.requests_since(since)
    assert await store.requests_since(datetime.now(UTC) + timedelta(minutes=1)) == {}


async def test_runs_are_looked_for_only_within_the_longest_run_span(store: Store) -> None:
    since = datetime.now(UTC) - timedelta(minutes=30)
    too_old = since - MAX_RUN_SPAN - timedelta(hours=1)
    late = (MAX_RUN_SPAN + timedelta(hours=2)).total_seconds()  # after `since`, but too long
    await record_run(store, "too-long", too_old, [job(1, 1, late)], finish=False)
    assert await store.requests_since(since) == {}
    assert await store.requests_since(too_old) == {"coingecko": 1}


async def test_a_naive_boundary_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.requests_since(datetime.now())


async def explain(db: AsyncEngine, since: datetime) -> str:
    """The query plan of `requests_since`, as one text. PostgreSQL is told to avoid sequential
    scans (on tiny test tables they are cheapest), so an index path must exist."""
    query = requests_query(db.dialect.name, since)
    sql = str(query.compile(db.sync_engine, compile_kwargs={"literal_binds": True}))
    async with db.connect() as conn:
        if db.dialect.name == "sqlite":
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            return "\n".join(str(r[-1]) for r in rows)
        await conn.exec_driver_sql("SET enable_seqscan = off")
        return "\n".join(str(r[0]) for r in await conn.exec_driver_sql(f"EXPLAIN {sql}"))


async def test_the_count_reads_runs_by_start_and_their_attempts_from_an_index(
    store: Store,
) -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    await record_run(store, "r", since, [job(1, 1, 1.0)], finish=True)
    plan = await explain(store.engine, since)
    assert "ix_runs_started_at" in plan and "ix_job_events_run_id_source_started_s" in plan, plan
    if store.engine.dialect.name == "sqlite":
        assert "SCAN" not in plan and "USING COVERING INDEX ix_job_events" in plan, plan
    else:
        assert "Seq Scan" not in plan, plan
