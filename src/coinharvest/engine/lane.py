"""Jobs and lanes: each source's queue of jobs, ordered by priority then arrival.

A `Job` is one request to one source for a batch of coins. A `Lane` holds a source's jobs
that are waiting: those ready to go in a heap keyed by ``(priority, seq)``, and those backing
off after a transient error in a heap keyed by the time they may go again. The lane holds no
capacity itself: the source's `SourceLimiter` decides when its head may start, and the
dispatcher (`dispatch.py`) looks at every lane's head and starts what the limits and the
global cap (`slots.py`) allow.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from coinharvest.engine.limiter import SourceLimiter
from coinharvest.models import Coin

__all__ = ["Job", "Lane"]

_ids = itertools.count(1)


@dataclass(slots=True)
class Job:
    """One request to `source` for `coins`. `attempts` counts the attempts already made."""

    source: str
    coins: tuple[Coin, ...]
    priority: int
    seq: int
    attempts: int = 0
    not_before: float = float("-inf")
    queued_at: float = 0.0
    started_at: float = 0.0  # clock time of the current attempt's committed start
    in_flight: int = 0  # the source's requests in flight when this attempt started (itself too)
    window: int = 0  # the adaptive sample window of this attempt (engine/concurrency.py)
    id: int = field(default_factory=lambda: next(_ids))
    #: The symbols of this job's coins, in order (computed once: every attempt records them).
    symbols: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.symbols = tuple(c.symbol for c in self.coins)


class Lane:
    """The waiting jobs of one source, plus that source's limiter."""

    __slots__ = ("_delayed", "_ready", "limiter", "source")

    def __init__(self, source: str, limiter: SourceLimiter) -> None:
        self.source = source
        self.limiter = limiter
        self._ready: list[tuple[int, int, Job]] = []
        self._delayed: list[tuple[float, int, Job]] = []

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed)

    def push(self, job: Job, now: float) -> None:
        """Queue `job`; it becomes eligible at ``job.not_before``."""
        job.queued_at = now
        if job.not_before > now:
            heapq.heappush(self._delayed, (job.not_before, job.seq, job))
        else:
            heapq.heappush(self._ready, (job.priority, job.seq, job))

    def head(self, now: float) -> Job | None:
        """The job that would go next at time `now` (highest priority, then oldest)."""
        while self._delayed and self._delayed[0][0] <= now:
            _, _, job = heapq.heappop(self._delayed)
            heapq.heappush(self._ready, (job.priority, job.seq, job))
        return self._ready[0][2] if self._ready else None

    def pop(self) -> Job:
        """Remove and return the job `head()` returned."""
        return heapq.heappop(self._ready)[2]

    def next_due(self) -> float | None:
        """When the earliest backing-off job becomes eligible, if any."""
        return self._delayed[0][0] if self._delayed else None

    def drain(self) -> list[Job]:
        """Remove and return every waiting job (for deferral at a deadline or shutdown)."""
        jobs = [j for _, _, j in self._ready] + [j for _, _, j in self._delayed]
        self._ready.clear()
        self._delayed.clear()
        return jobs
