"""The service loop on the virtual clock: ticks, skips, deadlines, graceful and hard stops."""

from __future__ import annotations

import asyncio

import pytest
from enginekit import coin
from vclock import run_virtual

from coinharvest.engine import Engine
from coinharvest.engine.hooks import MemorySink
from coinharvest.models import Coin, CoinStatus, RunStatus, SourceLimits
from coinharvest.service.scheduler import RunInProgress, Scheduler, SchedulerStats
from coinharvest.sources.simulated import SimulatedSource


def make(
    latency: float, n: int = 1, limits: SourceLimits | None = None
) -> tuple[Engine, MemorySink, list[Coin]]:
    src = SimulatedSource("s", default_latency=latency, limits=limits)
    sink = MemorySink()
    coins = [coin(f"C{i}", "s") for i in range(n)]
    return Engine({"s": src}, max_concurrency=5, sink=sink), sink, coins


def serve_for(sched: Scheduler, stop_at: list[float]) -> SchedulerStats:
    async def go() -> SchedulerStats:
        loop = asyncio.get_running_loop()
        for t in stop_at:
            loop.call_later(t, sched.request_stop)
        return await sched.serve()

    return run_virtual(go())


def test_runs_at_once_then_every_interval() -> None:
    engine, sink, coins = make(0.5, n=3)
    sched = Scheduler(engine, lambda: coins, interval_s=10.0)
    stats = serve_for(sched, [35.0])
    assert stats.runs == 4 and stats.skipped_ticks == 0  # t = 0, 10, 20, 30
    assert [s.status for s in sink.summaries] == [RunStatus.COMPLETED] * 4


def test_a_run_longer_than_the_interval_skips_ticks_and_never_overlaps() -> None:
    engine, sink, coins = make(25.0)
    skips: list[int] = []
    sched = Scheduler(engine, lambda: coins, interval_s=10.0, on_skip=lambda: skips.append(1))
    stats = serve_for(sched, [45.0])
    # Run 1: 0 → 25 (ticks at 10 and 20 skipped); run 2 starts at 30, still going at 40.
    assert stats.runs == 2
    assert stats.skipped_ticks == 3 == len(skips)
    assert len(sink.started) == 2
    src = engine.sources["s"]
    assert isinstance(src, SimulatedSource)
    starts = [t for t, _ in src.calls]
    assert starts == pytest.approx([0.0, 30.0])


def test_jobs_not_started_by_the_run_deadline_are_deferred() -> None:
    engine, sink, coins = make(0.1, n=5, limits=SourceLimits(1, 3.0))
    sched = Scheduler(engine, lambda: coins, interval_s=10.0)  # deadline 9 s: starts at 0, 3, 6
    serve_for(sched, [9.5])
    first = sink.summaries[0]
    assert (first.coins_ok, first.coins_deferred) == (3, 2)


def test_graceful_stop_lets_in_flight_jobs_finish_and_marks_the_run() -> None:
    engine, sink, coins = make(0.5, n=5, limits=SourceLimits(1, 1.0))
    sched = Scheduler(engine, lambda: coins, interval_s=60.0, grace_s=20.0)
    serve_for(sched, [1.2])  # job 2 started at 1.0, ends at 1.5
    summary = sink.summaries[-1]
    assert summary.status is RunStatus.INTERRUPTED
    assert summary.coins_ok == 2 and summary.coins_deferred == 3
    assert [r.symbol for _, r in sink.results if r.status is CoinStatus.OK] == ["C0", "C1"]


def test_grace_period_over_cancels_and_still_marks() -> None:
    engine, sink, coins = make(100.0, n=2)
    sched = Scheduler(engine, lambda: coins, interval_s=600.0, grace_s=5.0)
    serve_for(sched, [1.0])
    assert sink.summaries[-1].status is RunStatus.INTERRUPTED
    assert sink.summaries[-1].coins_deferred == 2


def test_second_stop_cancels_at_once() -> None:
    engine, sink, coins = make(100.0, n=2)
    sched = Scheduler(engine, lambda: coins, interval_s=600.0, grace_s=50.0)

    async def go() -> float:
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, sched.request_stop)
        loop.call_later(2.0, sched.request_stop)
        await sched.serve()
        return loop.time()

    assert run_virtual(go()) == pytest.approx(2.0)
    assert sink.summaries[-1].status is RunStatus.INTERRUPTED


def test_manual_trigger_while_running_is_refused() -> None:
    engine, _, coins = make(5.0)
    sched = Scheduler(engine, lambda: coins, interval_s=600.0)

    async def go() -> None:
        task = sched.trigger("api")
        await asyncio.sleep(1.0)
        with pytest.raises(RunInProgress):
            sched.trigger("api")
        await task

    run_virtual(go())
