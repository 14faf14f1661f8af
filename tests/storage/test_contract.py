"""The store's contract, one body per rule, run on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.errors import StoreError
from coinharvest.models import (
    CoinStatus,
    Confidence,
    JobRecord,
    JobStatus,
    Observation,
    RunStatus,
    RunSummary,
)
from coinharvest.storage import Store, queries

from .faults import FaultInjector
from .storekit import FAST, T0, minutes, result


async def rows(db: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with db.connect() as conn:
        return list(await conn.execute(text(sql), params))


async def scalar(db: AsyncEngine, sql: str, **params: Any) -> Any:
    return (await rows(db, sql, **params))[0][0]


def summary(run_id: str, status: RunStatus = RunStatus.COMPLETED, **kw: Any) -> RunSummary:
    base: dict[str, Any] = dict(
        run_id=run_id,
        trigger="manual",
        status=status,
        started_at=T0,
        duration_s=1.5,
        coins_total=2,
        coins_ok=2,
        coins_failed=0,
        coins_deferred=0,
        requests=3,
        rate_limited=1,
        retries=1,
        max_in_flight=2,
    )
    return RunSummary(**(base | kw))


JOBS = [
    JobRecord(1, "coingecko", ("A", "B"), 1, 0.0, 0.0, 0.5, JobStatus.RATE_LIMITED, "429"),
    JobRecord(1, "coingecko", ("A", "B"), 2, 0.5, 1.0, 1.4, JobStatus.OK),
]


# --------------------------------------------------------------------------- writes


async def test_a_run_is_written_at_start_per_coin_and_at_the_end(store: Store) -> None:
    db = store.engine
    await store.run_started("r1", "schedule", T0, [])
    assert await scalar(db, "SELECT status FROM runs WHERE run_id='r1'") == "running"
    await store.coin_completed("r1", result("A"))
    assert await scalar(db, "SELECT count(*) FROM observations WHERE symbol='A'") == 8
    await store.coin_completed("r1", result("B", status=CoinStatus.FAILED, metrics=0))
    await store.run_finished(
        summary("r1", RunStatus.PARTIAL, coins_ok=1, coins_failed=1, jobs=JOBS)
    )
    detail = await queries.run_detail(db, "r1")
    assert detail is not None
    run = detail.run
    assert (run.status, run.trigger, run.coins_ok, run.coins_failed, run.requests) == (
        "partial",
        "schedule",
        1,
        1,
        3,
    )
    assert run.finished_at is not None and run.error is None and run.coins_unsaved == 0
    assert {c.symbol: (c.status, c.observation_count) for c in detail.coins} == {
        "A": ("ok", 8),
        "B": ("failed", 0),
    }
    assert next(c for c in detail.coins if c.symbol == "B").error == "boom"
    assert [(j.attempt, j.status, j.symbols) for j in detail.jobs] == [
        (1, "rate_limited", "A,B"),
        (2, "ok", "A,B"),
    ]


async def test_writes_are_idempotent(store: Store) -> None:
    db = store.engine
    await store.run_started("r1", "manual", T0, [])
    await store.run_started("r1", "manual", T0, [])
    for _ in range(3):
        await store.coin_completed("r1", result("A", value=5.0))
    await store.run_finished(summary("r1", jobs=JOBS))
    await store.run_finished(summary("r1", jobs=JOBS))
    assert await scalar(db, "SELECT count(*) FROM runs") == 1
    assert await scalar(db, "SELECT count(*) FROM coin_results") == 1
    assert await scalar(db, "SELECT count(*) FROM observations") == 8
    assert await scalar(db, "SELECT count(*) FROM job_events") == 2
    # A repeated write carries the newer value, still one row.
    await store.coin_completed("r1", result("A", value=7.0))
    assert await scalar(db, "SELECT value FROM observations WHERE metric='m0'") == 7.0


async def test_concurrent_completions_never_collide(store: Store) -> None:
    await store.run_started("r1", "manual", T0, [])
    await asyncio.gather(*(store.coin_completed("r1", result(f"C{i:03d}")) for i in range(150)))
    assert await scalar(store.engine, "SELECT count(*) FROM coin_results") == 150
    assert await scalar(store.engine, "SELECT count(*) FROM observations") == 150 * 8


async def test_a_coin_is_stored_whole_or_not_at_all(
    faulty_store: tuple[Store, FaultInjector],
) -> None:
    store, faults = faulty_store
    faults.permanent = True
    faults.fail_observations_of("B")  # its result row goes in first, then this fails
    await store.run_started("r1", "manual", T0, [])
    await store.coin_completed("r1", result("A"))
    with pytest.raises(StoreError, match="storing B of run r1: injected"):
        await store.coin_completed("r1", result("B"))
    assert faults.failed == 1  # a permanent error is not retried
    got = await rows(store.engine, "SELECT symbol FROM coin_results")
    assert [r.symbol for r in got] == ["A"]
    assert await scalar(store.engine, "SELECT count(*) FROM observations WHERE symbol='B'") == 0


async def test_transient_failures_are_retried(faulty_store: tuple[Store, FaultInjector]) -> None:
    store, faults = faulty_store
    await store.run_started("r1", "manual", T0, [])
    faults.fail_writes(symbols={"A"})
    task = asyncio.create_task(store.coin_completed("r1", result("A")))
    while faults.failed < 2:  # fail twice, then the database "comes back"
        await asyncio.sleep(0.001)
    faults.heal()
    await task
    assert await scalar(store.engine, "SELECT count(*) FROM observations") == 8


async def test_unsaved_coins_are_retried_at_the_end_then_reported(
    faulty_store: tuple[Store, FaultInjector],
) -> None:
    store, faults = faulty_store
    await store.run_started("r1", "manual", T0, [])
    faults.fail_writes(symbols={"A", "B"})
    for sym in ("A", "B"):
        with pytest.raises(StoreError, match=f"storing {sym} of run r1"):
            await store.coin_completed("r1", result(sym))
    assert faults.failed == 2 * FAST.attempts
    await store.coin_completed("r1", result("C"))
    faults.heal()
    faults.fail_writes(symbols={"B"})  # A's outage is over; B's is not
    await store.run_finished(summary("r1", coins_total=3, coins_ok=3, store_errors=2))
    assert set(store.unsaved("r1")) == {"B"}
    run = (await queries.list_runs(store.engine))[0]
    assert run.status == "partial"  # "completed" would hide the loss
    assert run.coins_unsaved == 1 and run.store_errors == 2
    assert run.error is not None and "1 coin(s) could not be stored: B" in run.error
    stored = await rows(store.engine, "SELECT symbol FROM coin_results ORDER BY symbol")
    assert [r.symbol for r in stored] == ["A", "C"]


async def test_a_lost_run_start_is_repaired_by_the_first_coin(
    faulty_store: tuple[Store, FaultInjector],
) -> None:
    store, faults = faulty_store
    faults.rules.append(lambda st, _p: st.lstrip().startswith("INSERT INTO runs"))
    with pytest.raises(StoreError, match="recording start of run r1"):
        await store.run_started("r1", "manual", T0, [])
    faults.heal()
    await store.coin_completed("r1", result("A"))
    assert await scalar(store.engine, "SELECT status FROM runs") == "running"
    await store.run_finished(summary("r1"))
    assert await scalar(store.engine, "SELECT status FROM runs") == "completed"


# --------------------------------------------------------------------------- recovery


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def test_open_interrupts_runs_of_dead_processes_only(db_url: str) -> None:
    async with await Store.from_url(db_url, policy=FAST) as first:
        await first.run_started("dead", "manual", T0, [])
        await first.coin_completed("dead", result("A"))
        await first.coin_completed("dead", result("B", status=CoinStatus.FAILED))
        await first.run_started("alive", "manual", T0, [])
        await first.run_started("stale", "manual", datetime.now(UTC) - timedelta(days=3), [])
        # This host's run whose process (this one) lives is running however old it is.
        await first.run_started("long", "manual", datetime.now(UTC) - timedelta(days=3), [])
        host = first.owner.rpartition(":")[0]
        async with first.engine.begin() as conn:
            await conn.execute(
                text("UPDATE runs SET owner=:o WHERE run_id='dead'"), {"o": f"{host}:{dead_pid()}"}
            )
            await conn.execute(text("UPDATE runs SET owner='elsewhere:1' WHERE run_id='stale'"))
    async with await Store.from_url(db_url, policy=FAST) as second:
        got = {r.run_id: r for r in await queries.list_runs(second.engine)}
    assert got["dead"].status == "interrupted"
    assert (got["dead"].coins_ok, got["dead"].coins_failed) == (1, 1)
    assert got["dead"].error is not None and "interrupted" in got["dead"].error
    assert got["stale"].status == "interrupted"
    assert got["alive"].status == "running"  # its process (this one) still runs
    assert got["long"].status == "running"  # older than stale_after, but its process lives


# --------------------------------------------------------------------------- queries


async def test_latest_takes_the_newest_value_of_each_metric(store: Store) -> None:
    await store.run_started("r1", "manual", T0, [])
    await store.coin_completed("r1", result("BTC", 2, at=T0, value=100.0))
    await store.coin_completed("r1", result("ETH", 1, at=T0, value=10.0))
    await store.run_finished(summary("r1"))
    await store.run_started("r2", "manual", T0 + minutes(60), [])
    newer = result("BTC", 1, at=T0 + minutes(60), value=200.0, source="3xpl")
    newer.observations[0] = Observation(
        "BTC", "3xpl", "m0", 200.0, T0 + minutes(60), Confidence.MEDIUM, estimated=True
    )
    await store.coin_completed("r2", newer)
    now = T0 + minutes(90)
    latest = await queries.latest_values(store.engine, now=now)
    got = {(v.symbol, v.metric): v for v in latest}
    assert set(got) == {("BTC", "m0"), ("BTC", "m1"), ("ETH", "m0")}
    btc = got[("BTC", "m0")]
    assert (btc.value, btc.source, btc.confidence, btc.estimated, btc.run_id) == (
        200.0,
        "3xpl",
        "medium",
        True,
        "r2",
    )
    assert btc.age_s == 30 * 60 and btc.observed_at == T0 + minutes(60)
    assert btc.observed_at.tzinfo is not None
    assert got[("BTC", "m1")].value == 101.0 and got[("BTC", "m1")].age_s == 90 * 60
    only_eth = await queries.latest_values(store.engine, ["eth"], now=now)
    assert [(v.symbol, v.metric) for v in only_eth] == [("ETH", "m0")]


async def test_history_and_export_filter_by_date(store: Store) -> None:
    for i in range(4):
        run_id = f"r{i}"
        await store.run_started(run_id, "schedule", T0 + minutes(60 * i), [])
        await store.coin_completed(
            run_id, result("BTC", 2, at=T0 + minutes(60 * i), value=float(i))
        )
    hist = await queries.history(store.engine, "btc", "m0", since=T0 + minutes(90))
    assert [(p.value, p.run_id) for p in hist] == [(2.0, "r2"), (3.0, "r3")]
    assert all(p.observed_at.tzinfo is not None for p in hist)
    everything = [r async for r in queries.export_rows(store.engine)]
    assert len(everything) == 8
    future = [
        r async for r in queries.export_rows(store.engine, since=datetime.now(UTC) + minutes(1))
    ]
    assert future == []


async def test_runs_list_newest_first_and_detail_by_prefix(store: Store) -> None:
    for i, run_id in enumerate(("aaa111", "aaa222", "bbb333")):
        await store.run_started(run_id, "manual", T0 + minutes(i), [])
    listed = await queries.list_runs(store.engine, limit=2)
    assert [r.run_id for r in listed] == ["bbb333", "aaa222"]
    assert (await queries.run_detail(store.engine, "bbb")) is not None
    assert (await queries.run_detail(store.engine, "aaa")) is None  # ambiguous
    assert (await queries.run_detail(store.engine, "zzz")) is None
    detail = await queries.run_detail(store.engine, "aaa111")
    assert detail is not None and detail.as_dict()["run"]["started_at"].startswith(
        T0.strftime("%Y-%m-%d")
    )


async def test_notes_on_dropped_metrics_are_kept_with_the_coin(store: Store) -> None:
    await store.run_started("n1", "manual", T0, [])
    noted = result("ETH", 2)
    noted.notes = [
        "blockchair: onchain_volume_24h: not in the answer (volume_24h)",
        "coingecko: market_cap_usd: market_cap = 0 means unknown at coingecko",
    ]
    await store.coin_completed("n1", noted)
    await store.coin_completed("n1", result("BTC", 1))
    detail = await queries.run_detail(store.engine, "n1")
    assert detail is not None
    notes = {c.symbol: c.notes for c in detail.coins}
    assert notes == {"ETH": "\n".join(noted.notes), "BTC": None}
