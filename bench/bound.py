"""Lower bounds on a run's duration, computed from the limits alone.

For one source with `n` requests (after batching), in-flight cap `c`, spacing `d`, `R`
starts per window `W` and latency `L`, the last request cannot start before any of

- ``(n - 1)·d``                 (spacing between starts),
- ``floor((n - 1) / R)·W``      (start k needs floor(k / R) full windows before it),
- ``(ceil(n / c) - 1)·L``       (at most c in flight, each taking L),

and ends one latency later. A run's bound is the largest over its sources, and also at
least the global cap's own bound (``ceil(N / G)·L`` over all N requests). Every term is a
necessary condition, so the bound is never above the best achievable time; how close it
is to achievable depends on how the terms interact (they do not add up).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from coinharvest.models import SourceLimits

__all__ = ["SourceLoad", "pool_bound", "run_bound", "source_bound", "storm_bound"]


@dataclass(frozen=True, slots=True)
class SourceLoad:
    """What one source must serve in a run: `requests` requests of `latency_s` each."""

    name: str
    requests: int
    limits: SourceLimits
    latency_s: float


def last_start(load: SourceLoad) -> float:
    """Earliest possible start of the source's last request (0 for one request)."""
    n, lim = load.requests, load.limits
    if n <= 0:
        return 0.0
    spacing = (n - 1) * lim.min_interval_s
    window = 0.0
    if lim.rate_per_window is not None:
        window = ((n - 1) // lim.rate_per_window) * lim.window_s
    in_flight = (math.ceil(n / lim.max_concurrency) - 1) * load.latency_s
    return max(spacing, window, in_flight)


def source_bound(load: SourceLoad) -> float:
    """Earliest possible end of the source's last request (0 when it has none)."""
    return 0.0 if load.requests <= 0 else last_start(load) + load.latency_s


def run_bound(loads: Iterable[SourceLoad], global_cap: int) -> float:
    """The run's bound: the slowest source, or the global cap if that is tighter."""
    loads = list(loads)
    per_source = max((source_bound(load) for load in loads), default=0.0)
    total = sum(load.requests for load in loads)
    latency = min((load.latency_s for load in loads if load.requests), default=0.0)
    global_term = math.ceil(total / global_cap) * latency if total else 0.0
    return max(per_source, global_term)


def pool_bound(latencies: Sequence[float], cap: int, pause_s: float = 0.0) -> float:
    """Bound for unlimited sources behind a global cap of `cap` (W1).

    With ``cap == 1`` and a pause between jobs it is exact: the sum of latencies plus the
    pauses between them. Otherwise the parallel-machines bound: the longest job, the total
    work over `cap`, and the ``ceil(n / cap)`` shortest jobs that some slot must run in turn.
    """
    if not latencies:
        return 0.0
    if cap == 1:
        return sum(latencies) + pause_s * (len(latencies) - 1)
    per_slot = math.ceil(len(latencies) / cap)
    return max(max(latencies), sum(latencies) / cap, sum(sorted(latencies)[:per_slot]))


def storm_bound(load: SourceLoad, storm_start_s: float, retry_after_s: float) -> float:
    """Bound for a spacing-limited source that is answered 429 from `storm_start_s` on.

    Starts before the storm (at most ``floor(start / d) + 1`` of them, one every `d`)
    succeed; the first request in the storm is refused with ``Retry-After: retry_after_s``,
    so every other request starts after ``start + retry_after_s``, still spaced by `d`.
    """
    d = load.limits.min_interval_s
    before = load.requests if d <= 0 else min(load.requests, int(storm_start_s // d) + 1)
    rest = load.requests - before
    if rest <= 0:
        return source_bound(load)
    after = SourceLoad(load.name, rest, load.limits, load.latency_s)
    return storm_start_s + retry_after_s + source_bound(after)
