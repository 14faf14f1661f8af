"""Service mode: collect at once, then every interval, never overlapping (DESIGN §5).

Ticks are planned on the monotonic clock: tick k is due at ``start + k·interval`` (plus an
optional random jitter), so a slow run never shifts the schedule. Each run has a deadline
(`run_timeout_s`, default 90 % of the interval): jobs not started by then are deferred. A
tick that comes while a run is still going is skipped, logged and counted — never an
overlapping run.

Shutdown (`request_stop`, wired to SIGINT/SIGTERM by the CLI): the first call stops new
ticks and new jobs, gives in-flight jobs `grace_s` to finish and be stored, and marks the
run; a second call cancels the run at once (it is still marked ``interrupted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coinharvest.engine import Engine
from coinharvest.engine.limiter import Clock, loop_clock
from coinharvest.logs import get_logger
from coinharvest.models import Coin, RunSummary

__all__ = ["RunInProgress", "Scheduler", "SchedulerStats"]

log = get_logger("scheduler")
tick_log = get_logger("scheduler:tick")


class RunInProgress(RuntimeError):
    """A run was asked for while another is going (runs never overlap)."""


@dataclass(slots=True)
class SchedulerStats:
    """What the loop has done so far."""

    ticks: int = 0
    runs: int = 0
    skipped_ticks: int = 0
    last_summary: RunSummary | None = None


class Scheduler:
    """Runs `engine` over `coins()` at once and then every `interval_s` (see module docstring).

    `coins` is called before each run, so an edited coins file is picked up at the next tick.
    `on_skip` is called for every skipped tick (metrics).
    """

    def __init__(
        self,
        engine: Engine,
        coins: Callable[[], Sequence[Coin]],
        *,
        interval_s: float,
        run_timeout_s: float | None = None,
        jitter_s: float = 0.0,
        grace_s: float = 20.0,
        clock: Clock = loop_clock,
        rng: random.Random | None = None,
        on_skip: Callable[[], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.engine = engine
        self.coins = coins
        self.interval_s = interval_s
        self.run_timeout_s = run_timeout_s if run_timeout_s is not None else 0.9 * interval_s
        self.jitter_s = jitter_s
        self.grace_s = grace_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_skip = on_skip
        self.stats = SchedulerStats()
        self._stop = asyncio.Event()
        self._stop_requests = 0
        self._run_task: asyncio.Task[RunSummary] | None = None

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self._run_task is not None and not self._run_task.done()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    async def serve(self) -> SchedulerStats:
        """Tick until `request_stop`; then finish (or cut) the current run and return."""
        start = self.clock()
        k = 0
        while not self._stop.is_set():
            due = start + k * self.interval_s + self.rng.uniform(0.0, self.jitter_s)
            await self._sleep_until(due)
            if self._stop.is_set():
                break
            self._tick()
            # The next tick is the first one still in the future (missed ones are skipped).
            k = max(k + 1, int((self.clock() - start) // self.interval_s) + 1)
        await self._wind_down()
        return self.stats

    def trigger(
        self, trigger: str = "manual", run_id: str | None = None
    ) -> asyncio.Task[RunSummary]:
        """Start a run now (e.g. from the API), under `run_id` if given (a claimed tick's).
        Raises `RunInProgress` if one is going."""
        if self.running:
            raise RunInProgress("a collection run is already in progress")
        if self._stop.is_set():
            raise RunInProgress("the scheduler is shutting down")
        coins = list(self.coins())
        self.stats.runs += 1
        task = asyncio.get_running_loop().create_task(
            self.engine.run(coins, trigger=trigger, deadline_s=self.run_timeout_s, run_id=run_id),
            name=f"run-{trigger}",
        )
        task.add_done_callback(self._run_done)
        self._run_task = task
        return task

    def request_stop(self) -> None:
        """First call: graceful stop. Second call: cancel the run now (still marked)."""
        self._stop_requests += 1
        if self._stop_requests == 1:
            log.info("stopping: no new jobs; in-flight jobs get %.0f s to finish", self.grace_s)
            self._stop.set()
            self.engine.stop()
        elif self._run_task is not None and not self._run_task.done():
            log.warning("second stop request: cancelling the run now")
            self._run_task.cancel()

    def _tick(self) -> None:
        self.stats.ticks += 1
        if self.running:
            self.skipped("previous collection still running; tick skipped")
            return
        tick_log.debug("tick %d: starting a run", self.stats.ticks)
        self.trigger("schedule")

    def skipped(self, why: str, ticks: int = 1) -> None:
        """Count `ticks` ticks that ran no collection, logging `why` (a warning)."""
        self.stats.skipped_ticks += ticks
        log.warning("%s", why)
        if self.on_skip is not None:
            for _ in range(ticks):
                self.on_skip()

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds` on this scheduler's clock, or less if a stop is requested."""
        await self._sleep_until(self.clock() + seconds)

    def _run_done(self, task: asyncio.Task[RunSummary]) -> None:
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:
            log.error("collection run crashed: %s", exc, exc_info=exc)
            return
        self.stats.last_summary = task.result()

    async def _sleep_until(self, when: float) -> None:
        delay = when - self.clock()
        if delay <= 0:
            await asyncio.sleep(0)  # late already: still let the loop run (signals, runs)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=delay)

    async def wind_down(self) -> None:
        """After a stop: let the current run finish within the grace period, else cut it."""
        await self._wind_down()

    async def _wind_down(self) -> None:
        task = self._run_task
        if task is None or task.done():
            return
        self.engine.stop()
        done, _ = await asyncio.wait({task}, timeout=self.grace_s)
        if not done:
            log.warning("grace period of %.0f s over; cancelling the run", self.grace_s)
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
