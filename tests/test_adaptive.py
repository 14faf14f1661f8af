"""Adaptive limits, judged the way the upstream would, on the virtual clock.

Like Vector's adaptive-concurrency range files, these check ranges (the limit within ±1 of
the hidden capacity, 429s at most N, in-flight never above the ceiling), not exact values.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from adaptkit import HiddenRateSource, QueueSource
from enginekit import coin
from vclock import run_virtual

from coinharvest.engine import Engine
from coinharvest.engine.limiter import SourceLimiter
from coinharvest.engine.ratecontrol import RateControl
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import Coin, RunSummary, SourceLimits
from coinharvest.sources.base import Source


def _coins(name: str, n: int) -> list[Coin]:
    return [coin(f"C{i:05d}", name) for i in range(n)]


def _engine(source: Source, *, adaptive: bool = True, attempts: int = 6) -> Engine:
    return Engine(
        {source.name: source},
        max_concurrency=64,
        retry=RetryPolicy(max_attempts=attempts, max_pause_s=300.0, rng=random.Random(1)),
        adaptive=adaptive,
    )


def _collect_with_samples(
    engine: Engine, coins: Sequence[Coin], source: str, every_s: float = 0.25
) -> tuple[RunSummary, list[tuple[float, int]]]:
    """Run once; sample the source's in-flight limit every `every_s` (virtual seconds)."""
    samples: list[tuple[float, int]] = []

    async def sample() -> None:
        loop = asyncio.get_running_loop()
        while True:
            adaptation = engine.adaptations.get(source)
            # The controller's limit: a probe window's half is part of measuring, not of it.
            limit = engine.limiters[source].cap
            if adaptation is not None:
                limit = max(1, int(adaptation.concurrency.limit))
            samples.append((loop.time(), limit))
            await asyncio.sleep(every_s)

    async def go() -> RunSummary:
        sampler = asyncio.create_task(sample())
        try:
            return await engine.run(coins)
        finally:
            sampler.cancel()

    return run_virtual(go()), samples


def _caps(samples: list[tuple[float, int]], start: float, end: float) -> list[int]:
    return [cap for t, cap in samples if start <= t < end]


def _throughput(served: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(1 for _, done in served if start <= done < end) / (end - start)


def test_concurrency_follows_a_capacity_step_down_and_up() -> None:
    """W6 in miniature: capacity 8 → 2 → 8, 200 ms service, ceiling 16."""
    server = QueueSource(steps=((0.0, 8), (20.0, 2), (40.0, 8)), service_s=0.2, ceiling=16)
    summary, samples = _collect_with_samples(_engine(server), _coins("queue", 2600), "queue")
    assert summary.coins_ok == 2600
    assert server.max_in_flight <= 16  # the ceiling holds
    # Within 5 s of the decrease the limit is within ±1 of 2, and stays there.
    assert set(_caps(samples, 25.0, 40.0)) <= {1, 2, 3}
    # Within 15 s of the increase it is within ±1 of 8.
    late = _caps(samples, 55.0, 65.0)
    assert late and set(late) <= {7, 8, 9}, late
    # Steady state throughput near the oracle's (capacity / service time).
    assert _throughput(server.served, 8.0, 20.0) >= 0.9 * 8 / 0.2
    assert _throughput(server.served, 25.0, 40.0) >= 0.9 * 2 / 0.2


def test_fixed_limits_keep_the_ceiling_in_flight_when_capacity_drops() -> None:
    """The comparison: without adaptation the client keeps 16 out against a capacity of 2,
    so every answer waits in the server's queue (eight times the service time)."""
    server = QueueSource(steps=((0.0, 2),), service_s=0.2, ceiling=16)
    engine = _engine(server, adaptive=False)
    summary, samples = _collect_with_samples(engine, _coins("queue", 200), "queue")
    assert summary.coins_ok == 200 and set(_caps(samples, 0.0, 10.0)) == {16}
    assert max(end - arrival for arrival, end in server.served) >= 1.4  # ~ 16 / 2 × 0.2


def test_a_hidden_lower_rate_is_found_with_few_429s() -> None:
    """W7 in miniature: configured 30/min, the upstream allows 10/min."""
    upstream = HiddenRateSource(configured_per_min=30, hidden=10)
    summary = run_virtual(_engine(upstream).run(_coins("hidden", 150)))
    assert summary.coins_ok == 150
    refused = upstream.refused
    assert len(refused) <= 3, refused
    assert upstream.inside_retry_after == 0  # never sent inside a Retry-After
    after_discovery = [t for t in upstream.accepted + refused if t > refused[-1]]
    assert len(after_discovery) >= 100  # most of the run came after the last 429


def test_announced_limits_are_used_without_a_429() -> None:
    upstream = HiddenRateSource(configured_per_min=30, hidden=10, headers=True)
    summary = run_virtual(_engine(upstream).run(_coins("hidden", 40)))
    assert summary.coins_ok == 40
    assert upstream.refused == []


def test_fixed_limits_keep_hitting_the_hidden_rate() -> None:
    """The comparison: without adaptation, a 429 every window."""
    upstream = HiddenRateSource(configured_per_min=30, hidden=10)
    run_virtual(_engine(upstream, adaptive=False, attempts=20).run(_coins("hidden", 60)))
    assert len(upstream.refused) >= 4


def test_the_rate_recovers_after_quiet_minutes_but_stays_under_a_found_limit() -> None:
    limits = SourceLimits(max_concurrency=1, min_interval_s=2.0, rate_per_window=30)
    rate = RateControl(limits)
    for t in range(0, 20, 2):
        rate.started(float(t))
    rate.started(20.0)
    rate.rate_limited(20.3, 20.0)  # the 11th start of the minute was refused
    assert rate.rate == 9.0 and rate.ceiling == 15.0
    now = 20.3

    def quiet_minutes(n: int) -> None:
        nonlocal now
        for _ in range(n):  # a minute at the rate in force, every request answered
            for _ in range(int(rate.rate)):
                now += 60.0 / rate.rate
                rate.started(now)
                rate.answered(now)

    quiet_minutes(15)  # it climbs back, but stays under the rate that failed
    assert 12.0 <= rate.rate <= 15.0 * 0.9
    quiet_minutes(10)  # 20 min after the 429: it probes above
    assert rate.rate > 15.0 * 0.9 and rate.ceiling is None
    rate.rate_limited(now + 1, now)  # the probe was refused too: a new, fresh ceiling
    assert rate.ceiling is not None and rate.ceiling <= rate.configured
    assert rate.rate < 15.0


def test_the_limiter_never_goes_past_its_configured_limits() -> None:
    lim = SourceLimiter("s", SourceLimits(max_concurrency=4, min_interval_s=1.0), clock=lambda: 0)
    lim.adapt(cap=50, spacing_s=0.01)
    assert (lim.cap, lim.spacing_s) == (4, 1.0)
    lim.adapt(cap=0, spacing_s=5.0)
    assert (lim.cap, lim.spacing_s) == (1, 5.0)


def test_a_refused_request_judged_by_its_send_time_does_not_count_itself() -> None:
    """The engine re-stamps a start when its headers leave (later than admission): the
    rate control must move it too, or the 429 counts the refused request among those that
    passed (found by W7 against the emulator: a remembered 12/min instead of 11)."""
    limits = SourceLimits(max_concurrency=1, min_interval_s=2.0, rate_per_window=30)
    rate = RateControl(limits)
    for t in range(0, 22, 2):
        rate.started(float(t))
    rate.restamp(20.0, 20.001)  # the 11th left a millisecond after its admission
    rate.rate_limited(20.3, 20.001)
    assert rate.rate == 9.0 and rate.ceiling == 15.0
