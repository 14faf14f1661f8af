"""The client's own loop lag is measured, and adaptive limits do not mistake it for queueing."""

from __future__ import annotations

import asyncio
import time

from coinharvest.engine.adaptive import SourceAdaptation
from coinharvest.engine.limiter import SourceLimiter
from coinharvest.engine.looplag import LoopLag
from coinharvest.models import SourceLimits


def test_a_busy_loop_turn_is_measured_and_an_idle_one_is_not() -> None:
    async def scenario() -> tuple[float, float]:
        lag = LoopLag(weight=1.0)
        lag.sample()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        idle = lag.value
        loop = asyncio.get_running_loop()
        loop.call_soon(time.sleep, 0.03)  # a callback already ready runs first
        lag.sample()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return idle, lag.value

    idle, busy = asyncio.run(scenario())
    assert idle < 0.01
    assert busy >= 0.029


def _run_windows(client_lag: float) -> int:
    """Twelve rounds of 8 requests in flight against an upstream answering in 100 ms,
    each seen 60 ms late by a busy client: the in-flight limit at the end."""
    limiter = SourceLimiter("s", SourceLimits(max_concurrency=8), clock=lambda: 0.0)
    adaptation = SourceAdaptation(limiter)
    now = 0.0
    first = True
    for _ in range(12):
        sent = [(now, adaptation.started(now)) for _ in range(8)]
        # The first window is the client's idle start (no lag yet): the no-load time.
        seen_late = 0.0 if first else 0.06
        now += 0.1 + seen_late
        for started_at, window in sent:
            lag = 0.0 if first else client_lag
            adaptation.observe(now, started_at, 8, object(), window, lag)
        first = False
        now += 0.5  # windows last at least min_window_s
    return limiter.cap


def test_client_lag_taken_off_keeps_the_limit() -> None:
    assert _run_windows(client_lag=0.06) == 8


def test_without_it_the_same_lag_reads_as_upstream_queueing() -> None:
    assert _run_windows(client_lag=0.0) < 8


def test_an_overshooting_lag_estimate_cannot_zero_the_no_load_time() -> None:
    """A lag estimate larger than the response times (review: 25 ms against 20 ms answers)
    must not record a no-load time of 0, which would read every request as queued and hold
    the limit at 1; a genuinely slower upstream must still be seen."""
    limiter = SourceLimiter("s", SourceLimits(max_concurrency=8), clock=lambda: 0.0)
    adaptation = SourceAdaptation(limiter)
    now, caps = 0.0, []
    for i in range(12):
        rtt, lag = (0.02, 0.025) if i < 3 else (0.03, 0.0)
        sent = [(now, adaptation.started(now)) for _ in range(8)]
        now += rtt
        for started_at, window in sent:
            adaptation.observe(now, started_at, 8, object(), window, lag)
        caps.append(limiter.cap)
        now += 0.5
    assert adaptation.concurrency.no_load_rtt() is not None
    assert adaptation.concurrency.no_load_rtt() > 0  # type: ignore[operator]
    assert min(caps[4:]) >= 3, caps
