"""Property-based checks of the limits on the recorded start/end times of random runs.

Random limits, job durations, priorities and 429s; the run happens on the virtual clock, so
the recorded times are exact. For every source: no two starts closer than its interval, never
more than N starts in any rolling window, never more than its max in flight, no start during
a cooldown; overall: never more than MAX_COLLECTION_CONCURRENCY jobs in flight.
"""

from __future__ import annotations

import itertools

from enginekit import attempts, coin, ended, run_engine, span
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinharvest.models import Coin, JobStatus, RunSummary, SourceLimits
from coinharvest.sources.simulated import SimulatedSource

EPS = 1e-9
WINDOW = 10.0  # the "60 s" window, scaled


@st.composite
def source_specs(draw: st.DrawFn, name: str) -> tuple[SimulatedSource, int]:
    limits = SourceLimits(
        max_concurrency=draw(st.integers(1, 4)),
        min_interval_s=draw(st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.5])),
        rate_per_window=draw(st.one_of(st.none(), st.integers(1, 8))),
        window_s=WINDOW,
    )
    latencies = draw(st.lists(st.floats(0.0, 4.0), min_size=1, max_size=5))
    src = SimulatedSource(
        name,
        default_latency=latencies[0],
        latencies={f"{name}{i}": lat for i, lat in enumerate(latencies)},
        rate_limit_rate=draw(st.sampled_from([0.0, 0.0, 0.2])),
        failure_rate=draw(st.sampled_from([0.0, 0.1])),
        retry_after=draw(st.sampled_from([None, 0.5, 3.0])),
        limits=limits,
        batch_size=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 1000)),
    )
    return src, draw(st.integers(0, 12))


def in_flight_never_exceeds(intervals: list[tuple[float, float]], cap: int) -> bool:
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
        key=lambda ev: (ev[0], ev[1]),
    )  # ends before starts at the same instant
    level = 0
    for _, delta in events:
        level += delta
        if level > cap:
            return False
    return True


def check_source(summary: RunSummary, src: SimulatedSource) -> None:
    lim = src.default_limits
    recs = [r for r in attempts(summary) if r.source == src.name]
    starts = sorted(r.started_s for r in recs if r.started_s is not None)
    for a, b in itertools.pairwise(starts):
        assert b - a >= lim.min_interval_s - EPS, f"{src.name}: starts {a} and {b} too close"
    n = lim.rate_per_window
    if n is not None:
        for i in range(len(starts) - n):
            assert starts[i + n] - starts[i] >= WINDOW - EPS, (
                f"{src.name}: {n + 1} starts in a window"
            )
    intervals = [span(r) for r in recs]
    assert in_flight_never_exceeds(intervals, lim.max_concurrency)
    for r in recs:
        if r.status is JobStatus.RATE_LIMITED and src.retry_after is not None:
            end = ended(r)
            assert not any(end + EPS < s < end + src.retry_after - EPS for s in starts), (
                f"{src.name}: a start during the cooldown after {end}"
            )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True).flatmap(
        lambda ids: st.tuples(*(source_specs(f"s{i}") for i in ids))
    ),
    global_cap=st.integers(1, 5),
    pause=st.sampled_from([0.0, 0.0, 0.3]),
    priorities=st.lists(st.integers(1, 9), min_size=40, max_size=40),
)
def test_limits_hold_on_recorded_times(
    specs: tuple[tuple[SimulatedSource, int], ...],
    global_cap: int,
    pause: float,
    priorities: list[int],
) -> None:
    coins: list[Coin] = []
    for src, count in specs:
        for i in range(count):
            coins.append(coin(f"{src.name}{i}", src.name, priority=priorities[len(coins)]))
    summary = run_engine(
        [s for s, _ in specs], coins, max_concurrency=global_cap, pause_after_job_s=pause
    )
    assert summary.coins_total == len(coins)
    assert summary.coins_ok + summary.coins_failed + summary.coins_deferred == len(coins)
    for src, _ in specs:
        check_source(summary, src)
    all_intervals = [span(r) for r in attempts(summary)]
    assert in_flight_never_exceeds(all_intervals, global_cap)
    assert summary.max_in_flight <= global_cap
