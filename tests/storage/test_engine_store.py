"""The store as the engine's sink, on a real event loop: whole runs, and a database that
fails in the middle of one (the run goes on; writes are retried; losses are reported); and
as its limit store (quota counts and learned limits outlive the engine)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from enginekit import coin
from sqlalchemy import text

from coinharvest.engine import Engine
from coinharvest.engine.quota import day_start
from coinharvest.models import RunStatus, RunSummary, SourceLimits
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.storage import Store, queries

from .faults import FaultInjector

N = 40


def _engine(store: Store) -> Engine:
    rng = random.Random(7)
    latencies = {f"C{i:02d}": rng.uniform(0.001, 0.12) for i in range(N)}
    src = SimulatedSource("coingecko", latencies=latencies, seed=1)
    return Engine({"coingecko": src}, max_concurrency=5, sink=store)


async def _run(store: Store) -> RunSummary:
    return await _engine(store).run([coin(f"C{i:02d}", "coingecko") for i in range(N)])


async def _stored(store: Store) -> set[str]:
    async with store.engine.connect() as conn:
        return {r.symbol for r in await conn.execute(text("SELECT symbol FROM coin_results"))}


async def test_a_run_is_stored_as_it_goes_and_latest_shows_every_coin(store: Store) -> None:
    summary = await _run(store)
    assert summary.status is RunStatus.COMPLETED and summary.store_errors == 0
    latest = await queries.latest_values(store.engine)
    assert {v.symbol for v in latest} == {f"C{i:02d}" for i in range(N)}
    detail = await queries.run_detail(store.engine, summary.run_id)
    assert detail is not None and detail.run.status == "completed"
    assert len(detail.jobs) == N and detail.run.coins_ok == N


async def test_an_outage_mid_run_is_ridden_out(
    faulty_store: tuple[Store, FaultInjector],
) -> None:
    store, faults = faulty_store

    async def outage() -> None:
        while len(await _stored(store)) < 8:
            await asyncio.sleep(0.005)
        faults.fail_writes()  # every write fails ...
        await asyncio.sleep(0.15)  # ... for longer than one write's retries last
        faults.heal()

    summary, _ = await asyncio.gather(_run(store), outage())
    assert summary.coins_ok == N  # collection went on during the outage
    assert summary.store_errors > 0 and faults.failed > 0
    assert store.unsaved(summary.run_id) == {}  # retried at the end: nothing lost
    assert await _stored(store) == {f"C{i:02d}" for i in range(N)}
    run = (await queries.list_runs(store.engine))[0]
    assert (run.status, run.coins_unsaved, run.store_errors) == (
        "completed",
        0,
        summary.store_errors,
    )


@pytest.mark.parametrize("lost", [{"C07", "C13"}])
async def test_what_cannot_be_written_is_reported(
    faulty_store: tuple[Store, FaultInjector], lost: set[str]
) -> None:
    store, faults = faulty_store
    faults.fail_writes(symbols=lost)  # these coins never get in
    summary = await _run(store)
    assert summary.coins_ok == N and summary.store_errors == len(lost)
    assert set(store.unsaved(summary.run_id)) == lost
    assert await _stored(store) == {f"C{i:02d}" for i in range(N)} - lost
    run = (await queries.list_runs(store.engine))[0]
    assert run.status == "partial" and run.coins_unsaved == 2
    assert run.error is not None and "C07, C13" in run.error


async def test_a_daily_quota_and_learned_limits_outlive_the_engine(store: Store) -> None:
    now = datetime.now(UTC)  # the engines' wall clock, frozen: one UTC day, whenever it runs

    def engine() -> Engine:  # a fresh engine each time, as after a restart
        limits = SourceLimits(max_concurrency=2, quota_per_day=3)
        source = SimulatedSource("quota", limits=limits, seed=1)
        return Engine(
            {"quota": source}, sink=store, limit_store=store, adaptive=True, wall=lambda: now
        )

    first = await engine().run([coin(f"Q{i}", "quota") for i in range(2)])
    assert first.coins_ok == 2
    assert await store.requests_since(day_start(now)) == {"quota": 2}
    # The next engine learns from the database that only one request is left today.
    second = await engine().run([coin(f"R{i}", "quota") for i in range(3)])
    assert (second.coins_ok, second.coins_deferred) == (1, 2)
    assert await store.requests_since(day_start(now)) == {"quota": 3}
    learned = await store.load_learned_limits()
    assert [(limit.source, limit.key_id) for limit in learned] == [("quota", "")]
