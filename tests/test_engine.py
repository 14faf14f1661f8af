"""The engine through the simulated source, on a virtual clock (exact timings, no sleeps)."""

from __future__ import annotations

import pytest
from enginekit import attempts, coin, ended, run_engine, starts

from coinharvest.models import (
    CoinStatus,
    Confidence,
    JobStatus,
    RunStatus,
    RunSummary,
    SourceLimits,
)
from coinharvest.sources.simulated import SimulatedSource

SEED = {
    "BTC": 2.0,
    "ETH": 1.5,
    "DASH": 1.8,
    "DGB": 2.2,
    "XMR": 1.9,
    "RVN": 1.7,
    "XCH": 2.1,
    "XEC": 1.6,
    "XNO": 1.4,
    "NEAR": 2.0,
    "ICP": 1.8,
}


def seed_run(max_concurrency: int, pause: float = 0.0) -> RunSummary:
    src = SimulatedSource("sim", latencies=SEED)
    coins = [coin(s, "sim") for s in SEED]
    return run_engine([src], coins, max_concurrency=max_concurrency, pause_after_job_s=pause)


def test_sequential_with_delay_reproduces_the_seed_collector() -> None:
    summary = seed_run(1, pause=5.0)
    # collect, wait 5 s, collect, …: 20 s of latency + 10 pauses between 11 coins.
    assert summary.duration_s == pytest.approx(70.0)
    assert summary.coins_ok == 11 and summary.status is RunStatus.COMPLETED
    assert summary.max_in_flight == 1


def test_max_five_matches_the_seed_figure() -> None:
    summary = seed_run(5)
    assert summary.duration_s == pytest.approx(5.0)
    assert summary.max_in_flight == 5
    assert 1 - summary.duration_s / 70.0 >= 0.90


def test_max_three() -> None:
    assert seed_run(3).duration_s == pytest.approx(7.1)


def test_waiters_are_served_by_priority_then_arrival() -> None:
    src = SimulatedSource("s", default_latency=0.1, limits=SourceLimits(1, 1.0))
    coins = [
        coin("A", "s", priority=5),
        coin("B", "s", priority=1),
        coin("C", "s", priority=5),
        coin("D", "s", priority=2),
    ]
    summary = run_engine([src], coins)
    order = [sym for _, syms in src.calls for sym in syms]
    assert order == ["B", "D", "A", "C"]
    assert starts(summary, "s") == pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_batches_respect_batch_size_and_priority() -> None:
    src = SimulatedSource("s", batch_size=4)
    coins = [coin(f"C{i:02d}", "s", priority=10 - i % 3) for i in range(10)]
    summary = run_engine([src], coins)
    assert [len(syms) for _, syms in src.calls] == [4, 4, 2]
    assert summary.requests == 3 and summary.coins_ok == 10


def test_slow_source_never_starves_a_fast_one() -> None:
    """The issue's isolation case: max 2 global slots, one start per second on the slow source."""
    slow = SimulatedSource("slow", default_latency=0.5, limits=SourceLimits(1, 1.0))
    fast = SimulatedSource("fast", default_latency=0.1)
    coins = [coin(f"S{i}", "slow") for i in range(10)] + [coin(f"F{i}", "fast") for i in range(10)]
    summary = run_engine([slow, fast], coins, max_concurrency=2)
    third_slow_start = starts(summary, "slow")[2]
    fast_ok = [r for r in summary.results if r.symbol.startswith("F") and r.status is CoinStatus.OK]
    fast_ends = [ended(r) for r in attempts(summary) if r.source == "fast"]
    assert third_slow_start == pytest.approx(2.0)
    assert max(fast_ends) < third_slow_start
    assert len(fast_ok) == 10


def test_a_429_pauses_the_whole_source_while_others_go_on() -> None:
    limited = SimulatedSource("limited", default_latency=0.1, rate_limit_rate=1.0, retry_after=2.0)
    other = SimulatedSource("other", default_latency=0.1, limits=SourceLimits(1, 0.25))
    coins = [coin(f"L{i}", "limited") for i in range(3)] + [
        coin(f"O{i}", "other") for i in range(12)
    ]
    summary = run_engine([limited, other], coins, max_attempts=2)
    recs = attempts(summary)
    first_429_end = min(
        ended(r) for r in recs if r.source == "limited" and r.status is JobStatus.RATE_LIMITED
    )
    limited_starts = [s for s in starts(summary, "limited") if s > first_429_end]
    assert limited_starts and min(limited_starts) >= first_429_end + 2.0
    assert any(first_429_end < s < first_429_end + 2.0 for s in starts(summary, "other"))
    assert summary.rate_limited >= 1


def test_transient_errors_are_retried_then_fail() -> None:
    src = SimulatedSource("s", failure_rate=1.0, default_latency=0.01)
    summary = run_engine([src], [coin("A", "s")], max_attempts=3)
    assert summary.requests == 3 and summary.retries == 2
    assert summary.results[0].status is CoinStatus.FAILED
    assert "gave up after 3 attempts" in (summary.results[0].error or "")
    assert summary.status is RunStatus.FAILED


def test_unknown_coin_fails_alone_and_falls_back_with_lower_confidence() -> None:
    first = SimulatedSource("first", unknown=frozenset({"B"}), batch_size=10)
    second = SimulatedSource("second")
    coins = [
        coin("A", chain=("first", "second")),
        coin("B", chain=("first", "second")),
        coin("C", "first"),
    ]
    summary = run_engine([first, second], coins)
    by = {r.symbol: r for r in summary.results}
    assert all(r.status is CoinStatus.OK for r in by.values())
    assert by["B"].sources == ("first", "second")
    assert {o.confidence for o in by["B"].observations} == {Confidence.MEDIUM}
    assert {o.confidence for o in by["A"].observations} == {Confidence.HIGH}
    assert summary.requests == 2


def test_partial_run_and_error_isolation() -> None:
    src = SimulatedSource("s", unknown=frozenset({"BAD"}))
    summary = run_engine([src], [coin("OK1", "s"), coin("BAD", "s"), coin("OK2", "s")])
    assert summary.status is RunStatus.PARTIAL
    assert (summary.coins_ok, summary.coins_failed) == (2, 1)
    bad = next(r for r in summary.results if r.symbol == "BAD")
    assert bad.error == "unknown to s: bad"


def test_jobs_not_started_by_the_deadline_are_deferred() -> None:
    src = SimulatedSource("s", default_latency=0.1, limits=SourceLimits(1, 1.0))
    summary = run_engine([src], [coin(f"C{i}", "s") for i in range(10)], deadline_s=3.5)
    assert summary.coins_ok == 4 and summary.coins_deferred == 6
    assert summary.status is RunStatus.PARTIAL


def test_cooldown_past_the_deadline_defers_at_once() -> None:
    src = SimulatedSource("s", default_latency=0.1, rate_limit_rate=1.0, retry_after=60.0)
    summary = run_engine([src], [coin(f"C{i}", "s") for i in range(3)], deadline_s=10.0)
    assert summary.coins_deferred == 3
    assert summary.duration_s < 1.0  # nobody waited for the 60 s pause


def test_coin_with_an_unconfigured_source_fails_clearly() -> None:
    src = SimulatedSource("s")
    summary = run_engine([src], [coin("A", "nowhere"), coin("B", "s")])
    a = next(r for r in summary.results if r.symbol == "A")
    assert a.status is CoinStatus.FAILED and "no such source" in (a.error or "")


def test_observer_sees_every_job_and_coin() -> None:
    import random

    from vclock import run_virtual

    from coinharvest.engine import Engine
    from coinharvest.engine.retry import RetryPolicy
    from coinharvest.models import CoinResult

    class Recorder:
        def __init__(self) -> None:
            self.events: list[tuple[str, str]] = []

        def job_started(self, source: str, waited_s: float) -> None:
            self.events.append(("start", f"{source}:{waited_s:g}"))

        def job_finished(self, source: str, outcome: str, duration_s: float) -> None:
            self.events.append(("end", f"{source}:{outcome}"))

        def coin_completed(self, result: CoinResult) -> None:
            self.events.append(("coin", result.symbol))

        def run_finished(self, summary: RunSummary) -> None:
            self.events.append(("run", summary.status.value))

        def circuit_changed(self, source: str, state: str) -> None:
            self.events.append(("circuit", f"{source}:{state}"))

    src = SimulatedSource("s", default_latency=0.1, limits=SourceLimits(1, 1.0))
    flaky = SimulatedSource("f", default_latency=0.1, rate_limit_rate=1.0, retry_after=1.0)
    rec = Recorder()

    async def go() -> None:
        engine = Engine(
            {"s": src, "f": flaky},
            observer=rec,
            retry=RetryPolicy(max_attempts=2, rng=random.Random(0)),
        )
        await engine.run([coin("A", "s"), coin("B", "s"), coin("C", "f")])

    run_virtual(go())
    assert ("start", "s:1") in rec.events  # B waited 1 s for its source's spacing
    assert rec.events.count(("end", "f:429")) == 2
    assert rec.events.count(("end", "s:200")) == 2
    assert sorted(sym for kind, sym in rec.events if kind == "coin") == ["A", "B", "C"]
    assert rec.events[-1] == ("run", "partial")


def test_coins_falling_back_together_share_one_batched_job() -> None:
    first = SimulatedSource("first", failure_rate=1.0, batch_size=10)
    second = SimulatedSource("second", batch_size=10)
    coins = [coin(f"C{i}", chain=("first", "second")) for i in range(5)]
    summary = run_engine([first, second], coins, max_attempts=1)
    assert summary.coins_ok == 5
    assert len(second.calls) == 1 and len(second.calls[0][1]) == 5
