"""The run engine: plan → per-source lanes → dispatcher → fetch → per-coin completion.

`Engine` lives as long as the process (its limiters remember cooldowns and spacing across
runs); each `Engine.run()` collects one set of coins once (DESIGN §2):

1. **Plan.** For every coin, the first source of each of its fallback chains gets the coin;
   each source's coins are cut into batches of its batch size, in priority order. A batch
   is a job with the best priority of its coins.
2. **Dispatch.** One loop looks at the head of every lane. A job starts only when its
   source's limiter admits it *and* a global slot is free; both are committed in the same
   synchronous step. Waiting holds nothing, so a throttled source never starves the others.
3. **Fetch.** One task per started job calls ``source.fetch``. A 429 pauses the whole source
   (cooldown) and puts the job back in its lane; a transient error puts it back with a
   back-off; a permanent error fails its coins at that source (or falls back).
4. **Complete.** A coin whose chains have all ended goes to the sink at once.
5. **Finish.** Totals and status go into a `RunSummary`; the sink gets it.
"""

from __future__ import annotations

import itertools
import random
import uuid
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from coinharvest.engine.adaptive import AdaptiveOptions, LimitView, SourceAdaptation, limit_view
from coinharvest.engine.breaker import CircuitBreaker, CircuitState
from coinharvest.engine.hooks import (
    EngineObserver,
    LimitStore,
    MemorySink,
    NullObserver,
    ResultSink,
)
from coinharvest.engine.limiter import Clock, SourceLimiter, loop_clock
from coinharvest.engine.memory import LimitMemory
from coinharvest.engine.parts import RunParts
from coinharvest.engine.quota import QuotaBudget, WallClock, utc_now
from coinharvest.engine.retry import RetryPolicy
from coinharvest.engine.run import Run
from coinharvest.engine.slots import GlobalSlots
from coinharvest.logs import get_logger
from coinharvest.models import Coin, RunSummary, SourceLimits
from coinharvest.sources.base import Source

__all__ = ["Engine"]

if TYPE_CHECKING:
    from coinharvest.engine.shared_limits import SharedLimits

log = get_logger("engine")


def _adaptations(
    limiters: Mapping[str, SourceLimiter], adaptive: bool | AdaptiveOptions
) -> dict[str, SourceAdaptation]:
    if adaptive is False:
        return {}
    opts = AdaptiveOptions() if adaptive is True else adaptive
    return {
        name: SourceAdaptation(
            lim, opts.key_ids.get(name, ""), concurrency=opts.concurrency, rate=opts.rate
        )
        for name, lim in limiters.items()
    }


def _limiters(
    sources: Mapping[str, Source],
    overrides: Mapping[str, SourceLimits],
    clock: Clock,
    wall: WallClock,
) -> dict[str, SourceLimiter]:
    built: dict[str, SourceLimiter] = {}
    for name, src in sources.items():
        limits = overrides.get(name, src.default_limits)
        quota = None
        if limits.quota_per_day is not None or limits.quota_per_month is not None:
            quota = QuotaBudget(name, limits.quota_per_day, limits.quota_per_month, wall)
        built[name] = SourceLimiter(name, limits, clock, quota)
    return built


class Engine:
    """Collects coins from sources under per-source limits and a global concurrency cap.

    Parameters:
        sources: the sources by name. Coins naming other sources fail (or fall back) there.
        max_concurrency: ``MAX_COLLECTION_CONCURRENCY``, jobs in flight across all sources.
        limits / batch_sizes: per-source overrides of ``source.default_limits`` and
            ``source.batch_size``.
        pause_after_job_s: the deprecated ``DELAY_BETWEEN_COINS_MS``, in seconds.
        retry: back-off policy and attempt cap.
        job_timeout_s: safety net around one ``fetch`` (sources have their own HTTP timeouts).
        sink: receives results as they happen (default: in memory).
        observer: told about every job and coin as it happens (metrics).
        clock: monotonic clock; defaults to the event loop's, which tests may replace.
        breaker_failures / breaker_cooloff_s: a source whose connections fail this many
            times in a row is sent nothing for this long, then probed (engine/breaker.py).
        adaptive: learn each source's in-flight limit and rate below its limits
            (``ADAPTIVE_LIMITS``, engine/adaptive.py); an `AdaptiveOptions` also says which
            API key each source uses and may override the controllers' constants.
        limit_store: keeps learned limits and counts requests for quotas (engine/memory.py).
        wall: the wall clock, read only for quota periods (UTC days and months).
        shared: every source's limits also shared with the other processes on one
            PostgreSQL (``SHARED_LIMITS=on``, engine/shared_limits.py).
    """

    def __init__(
        self,
        sources: Mapping[str, Source],
        *,
        max_concurrency: int = 5,
        limits: Mapping[str, SourceLimits] | None = None,
        batch_sizes: Mapping[str, int] | None = None,
        pause_after_job_s: float = 0.0,
        retry: RetryPolicy | None = None,
        job_timeout_s: float | None = None,
        sink: ResultSink | None = None,
        observer: EngineObserver | None = None,
        clock: Clock = loop_clock,
        breaker_failures: int = 3,
        breaker_cooloff_s: float = 30.0,
        adaptive: bool | AdaptiveOptions = False,
        limit_store: LimitStore | None = None,
        wall: WallClock = utc_now,
        shared: SharedLimits | None = None,
    ) -> None:
        self.sources = dict(sources)
        self.clock = clock
        self.slots = GlobalSlots(max_concurrency, pause_after_job_s)
        self.retry = retry or RetryPolicy(rng=random.Random())
        self.job_timeout_s = job_timeout_s
        self.sink: ResultSink = sink if sink is not None else MemorySink()
        self.observer: EngineObserver = observer or NullObserver()
        self.limiters = _limiters(self.sources, limits or {}, clock, wall)
        self.adaptations = _adaptations(self.limiters, adaptive)
        self.memory = LimitMemory(limit_store, self.limiters, self.adaptations, clock, wall)
        sizes = dict(batch_sizes or {})
        self.batch_sizes = {
            name: max(1, sizes.get(name, src.batch_size)) for name, src in self.sources.items()
        }
        self.breakers = self._breakers(breaker_failures, breaker_cooloff_s)
        self.shared = shared
        self._seq = itertools.count()
        self._current: Run | None = None

    @property
    def parts(self) -> RunParts:
        """What a run uses of this engine (read when a run starts)."""
        return RunParts(
            sources=self.sources,
            limiters=self.limiters,
            batch_sizes=self.batch_sizes,
            slots=self.slots,
            retry=self.retry,
            sink=self.sink,
            observer=self.observer,
            clock=self.clock,
            job_timeout_s=self.job_timeout_s,
            breakers=self.breakers,
            adaptations=self.adaptations,
            shared=self.shared,
        )

    def limit_views(self) -> list[LimitView]:
        """Each source's limits as they stand now (learned, configured, quotas)."""
        return [limit_view(lim, self.adaptations.get(n)) for n, lim in self.limiters.items()]

    def _breakers(self, failures: int, cooloff_s: float) -> dict[str, CircuitBreaker]:
        # The breakers reach the engine's observer through a weak reference: a bound method
        # would tie the engine (and its sink's results) into a cycle that only a full
        # garbage collection frees.
        engine = weakref.ref(self)

        def changed(source: str, state: CircuitState) -> None:
            if (alive := engine()) is not None:
                alive.observer.circuit_changed(source, state)

        return {
            name: CircuitBreaker(
                name, failure_threshold=failures, cooloff_s=cooloff_s, on_change=changed
            )
            for name in self.sources
        }

    @property
    def max_concurrency(self) -> int:
        """The global cap."""
        return self.slots.capacity

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self._current is not None

    async def run(
        self,
        coins: Sequence[Coin],
        *,
        trigger: str = "manual",
        deadline_s: float | None = None,
        run_id: str | None = None,
    ) -> RunSummary:
        """Collect `coins` once and return the summary.

        `deadline_s` (seconds from now): jobs not started by then are deferred, and so are
        jobs whose source is paused past it. Raises RuntimeError if a run is already going
        on this engine (runs never overlap).
        """
        if self._current is not None:
            raise RuntimeError("a run is already in progress on this engine")
        await self.memory.recall()
        now = self.clock()
        run = Run(
            self.parts,
            coins,
            run_id=run_id or uuid.uuid4().hex[:12],
            trigger=trigger,
            started_at=datetime.now(UTC),
            deadline=None if deadline_s is None else now + deadline_s,
            seq=self._seq,
        )
        self._current = run
        try:
            summary = await run.execute()
        finally:
            self._current = None
        await self.memory.remember()
        return summary

    def stop(self) -> None:
        """Start no new jobs in the current run; jobs in flight finish; queued ones are deferred."""
        if self._current is not None:
            self._current.stop()
