"""The dispatcher of one run: the only place jobs start (DESIGN §2, step 2).

`Dispatcher.loop` looks at the head job of every source's lane. A job starts when its
source's limiter admits it *and* a global slot is free, both committed in one synchronous
step, best (priority, arrival) first; it then runs in its own task (`spawn`). Waiting holds
nothing, so a throttled source never starves the others. Between decisions the loop sleeps
until the earliest moment anything could change (a limiter's ready time, a back-off, the
deadline) or until woken (`poke`: a job ended, a slot freed, the run is stopping). Queued
jobs that can no longer start in time, or whose source's quota is spent, are handed back
through `on_defer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping

from coinharvest.engine.lane import Job, Lane
from coinharvest.engine.limiter import Clock, SourceLimiter
from coinharvest.engine.slots import GlobalSlots
from coinharvest.logs import get_logger

__all__ = ["Dispatcher"]

llog = get_logger("limiter")

#: Called to start a job the dispatcher admitted: ``(lane, job, now)``.
Launch = Callable[[Lane, Job, float], None]
#: Called for a queued job that will not start in this run: ``(job, reason, now)``.
Defer = Callable[[Job, str, float], None]


def _not_running(*_: object) -> None:
    raise RuntimeError("the dispatcher's loop is not running")


class Dispatcher:
    """Lanes, slots and the wake-up loop of one run (see the module docstring)."""

    def __init__(
        self,
        limiters: Mapping[str, SourceLimiter],
        slots: GlobalSlots,
        clock: Clock,
        deadline: float | None,
    ) -> None:
        self.lanes = {name: Lane(name, lim) for name, lim in limiters.items()}
        self.slots = slots
        self.clock = clock
        self.deadline = deadline
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self._launch: Launch = _not_running
        self._defer: Defer = _not_running
        self._wake: asyncio.Future[None] | None = None

    async def loop(self, *, launch: Launch, defer: Defer) -> None:
        """Start jobs as they become admissible; return when no job is queued or running.

        `launch` starts an admitted job; `defer` takes a queued job that will not start.
        They are held only while the loop runs: they are the run's own methods, and a
        dispatcher that kept them would tie the run and everything it collected into a
        reference cycle, freed only by a full garbage collection.
        """
        self._launch, self._defer = launch, defer
        try:
            await self._loop()
        finally:
            self._launch = self._defer = _not_running

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = self.clock()
            self._defer_unreachable(now)
            self._start_ready()
            if not self.tasks and not any(self.lanes.values()):
                return
            wake = self._next_wake(now)
            self._wake = loop.create_future()
            handle = (
                None
                if wake is None
                else loop.call_at(loop.time() + max(0.0, wake - now), self.poke)
            )
            try:
                await self._wake
            finally:
                if handle is not None:
                    handle.cancel()

    def poke(self) -> None:
        """Wake the loop to look again."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def stop(self) -> None:
        """No new starts; queued jobs are deferred when the loop wakes."""
        self.stopping = True
        self.poke()

    def spawn(self, coro: Coroutine[None, None, None], name: str) -> None:
        """Run `coro` as a task of this run; the loop wakes when it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    async def cancel_all(self) -> None:
        """Cancel every task of the run and wait for them."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.poke()

    def _start_ready(self) -> None:
        """Start jobs while a global slot is free, best (priority, arrival) first."""
        while self.slots.available():
            now = self.clock()  # fresh per start: a start is stamped when it happens
            best = self._best_admissible(now)
            if best is None or not best.limiter.try_start(now):
                return
            self.slots.take()
            llog.debug("%s: start granted %r", best.source, best.limiter)
            self._launch(best, best.pop(), now)

    def _best_admissible(self, now: float) -> Lane | None:
        best: Lane | None = None
        best_key = (0, 0)
        for lane in self.lanes.values():
            job = lane.head(now)
            if job is None or (best is not None and (job.priority, job.seq) >= best_key):
                continue
            at = lane.limiter.ready_at(now)
            if at is not None and at <= now:
                best, best_key = lane, (job.priority, job.seq)
        return best

    def _next_wake(self, now: float) -> float | None:
        """When to look again if nobody wakes us: a limiter's ready time, a back-off, the
        deadline. With no global slot free, only a release (which wakes us) or the deadline
        matter."""
        times: list[float] = []
        if self.deadline is not None and any(self.lanes.values()):
            times.append(self.deadline)
        for lane in self.lanes.values():
            if not lane or not self.slots.available():
                continue
            due = lane.next_due()
            if due is not None:
                times.append(due)
            if lane.head(now) is not None and (at := lane.limiter.ready_at(now)) is not None:
                times.append(at)
        return min(times) if times else None

    def _defer_unreachable(self, now: float) -> None:
        """Defer queued jobs that cannot start before the deadline, or at all when stopping."""
        for lane in self.lanes.values():
            reason = self._unreachable(lane, now) if lane else None
            if reason is not None:
                for job in lane.drain():
                    self._defer(job, reason, now)

    def _unreachable(self, lane: Lane, now: float) -> str | None:
        if self.stopping:
            return "deferred: collection stopped before this job started"
        if (spent := lane.limiter.quota_refusal()) is not None:
            return f"deferred: {spent}"  # never sent: the next run (or day) takes them
        if self.deadline is None:
            return None
        if now >= self.deadline:
            return "deferred: run deadline passed before this job started"
        if lane.limiter.cooldown_until > self.deadline:
            return f"deferred: {lane.source} is paused (rate limited) past the run deadline"
        return None
