"""Service mode with replicas: the leader runs each tick once, on the database's clock.

Ticks are numbered from the epoch on the database's clock: tick ``k`` of an interval ``I``
is due at ``k·I`` (plus an optional random jitter), so every replica agrees on which tick is
due whatever its own clock says (reference ratelimit-concurrency.md §7.3). The loop, on each
replica::

    every LEADER_CHECK_SECONDS: check the lock, write the heartbeat (`Leadership.check`);
        as leader and idle, take a forwarded run request (``POST /api/runs`` on a follower)
    as leader, idle, with a tick due: claim it in ``schedule_ticks`` (the fence: a tick is
        claimed once, only by the lock's holder), then start its run under the claimed id

A new leader continues after the newest tick anyone claimed: a tick the dead leader was
running is not run again (its run reads ``interrupted``); a tick due during the takeover is
run at once, late (``schedule_ticks.late_s``); if several were missed, only the newest runs
and the others are counted as skipped and logged. A tick due while a run is still going is
skipped and counted, as in one process. `start_run` is ``POST /api/runs`` on any replica:
the leader starts it, a follower forwards it through ``run_requests`` and waits for the id.
"""

from __future__ import annotations

import math
import random
import uuid

from coinharvest.config import Settings
from coinharvest.logs import get_logger
from coinharvest.service.api import ServiceState
from coinharvest.service.leadership import Leadership
from coinharvest.service.scheduler import RunInProgress, Scheduler, SchedulerStats
from coinharvest.storage import leader_sql
from coinharvest.storage.store import Store

__all__ = ["ReplicatedScheduler", "replicate"]

log = get_logger("scheduler")
#: Shortest sleep of the loop (a tick due "now" by the offset but not yet by the database).
MIN_SLEEP_S = 0.005


class ReplicatedScheduler:
    """Drives `sched` (its runs, skips and shutdown) with ticks fenced in the database."""

    def __init__(
        self,
        sched: Scheduler,
        leadership: Leadership,
        *,
        rng: random.Random | None = None,
        forward_wait_s: float | None = None,
    ) -> None:
        self.sched = sched
        self.leadership = leadership
        self.interval_ms = max(1, round(sched.interval_s * 1000))
        self.rng = rng or random.Random()
        #: How long a follower waits for the leader to take a forwarded run request.
        self.forward_wait_s = forward_wait_s or max(3.0, 4 * leadership.check_s)
        self._last_tick: int | None = None  # the newest tick claimed or passed
        self._jitter_s = 0.0
        self._next_check = -math.inf

    async def serve(self) -> SchedulerStats:
        """Check, lead, tick until the scheduler is asked to stop; then wind down and
        release the lock."""
        sched = self.sched
        try:
            while not sched.stopping:
                try:
                    await self._step()
                except Exception as exc:  # a database error mid-step: the next check decides
                    await self.leadership.lost(f"{type(exc).__name__}: {exc}")
                    self._next_check = self.sched.clock() + self.leadership.check_s
                await sched.pause(self._sleep_s())
            await sched.wind_down()
        finally:
            await self.leadership.aclose()
        return sched.stats

    async def _step(self) -> None:
        lead = self.leadership
        if self.sched.clock() >= self._next_check:
            was_leading = lead.leads
            self._next_check = self.sched.clock() + lead.check_s
            if await lead.check() and not was_leading:
                await self._continue_schedule()
            if lead.leads and not self.sched.running:
                await self._take_request()
        if lead.leads and self._tick_due():
            await self._tick()

    async def _continue_schedule(self) -> None:
        """Just became leader: go on after the newest tick anyone claimed (or, first ever,
        run the tick due now at once)."""
        conn = await self.leadership.connection()
        last = await leader_sql.last_tick(conn, self.interval_ms)
        now = self.leadership.db_now()
        assert now is not None  # a check succeeded
        current = math.floor(now * 1000 / self.interval_ms)
        self._last_tick = last if last is not None else current - 1
        self._jitter_s = 0.0  # a tick missed during a takeover runs at once
        if last is not None and last >= current:
            log.info("tick %d already run; next tick in %.1f s", last, self._due() - now)

    def _due(self) -> float:
        """Database epoch seconds when the tick after the last one is due (with jitter)."""
        assert self._last_tick is not None
        return (self._last_tick + 1) * self.interval_ms / 1000 + self._jitter_s

    def _tick_due(self) -> bool:
        now = self.leadership.db_now()
        return self._last_tick is not None and now is not None and now >= self._due()

    async def _tick(self) -> None:
        sched = self.sched
        if sched.running:
            sched.stats.ticks += 1
            now = self.leadership.db_now() or 0.0
            self._passed(math.floor(now * 1000 / self.interval_ms))
            sched.skipped("previous collection still running; tick skipped")
            return
        run_id = uuid.uuid4().hex[:12]
        conn = await self.leadership.connection()
        after = self._last_tick if self._last_tick is not None else -1
        claimed = await leader_sql.claim_tick(
            conn, self.interval_ms, self.leadership.replica_id, run_id, after
        )
        if claimed is None:
            await self._not_claimed()
            return
        self._start(claimed, run_id)

    def _start(self, claimed: tuple[int, float], run_id: str) -> None:
        tick, late_s = claimed
        missed = tick - (self._last_tick if self._last_tick is not None else tick - 1) - 1
        if missed > 0:
            self.sched.skipped(
                f"{missed} tick(s) passed with no leader; running tick {tick} now", missed
            )
        self._passed(tick)
        self.sched.stats.ticks += 1
        log.info("tick %d: starting run %s (%.2f s after it was due)", tick, run_id, late_s)
        self.sched.trigger("schedule", run_id=run_id)

    async def _not_claimed(self) -> None:
        """Early by the offset's error, lost the lock, or someone else claimed it: re-read."""
        conn = await self.leadership.connection()
        last = await leader_sql.last_tick(conn, self.interval_ms)
        if last is not None and (self._last_tick is None or last > self._last_tick):
            self._passed(last)
        self._next_check = -math.inf  # re-check the lock before trying again

    def _passed(self, tick: int) -> None:
        self._last_tick = tick if self._last_tick is None else max(tick, self._last_tick)
        self._jitter_s = self.rng.uniform(0.0, self.sched.jitter_s)

    async def _take_request(self) -> None:
        run_id = uuid.uuid4().hex[:12]
        conn = await self.leadership.connection()
        request = await leader_sql.claim_request(conn, self.leadership.replica_id, run_id)
        if request is not None:
            log.info("run request %d (forwarded): starting run %s", request, run_id)
            self.sched.trigger("api", run_id=run_id)

    def _sleep_s(self) -> float:
        now = self.sched.clock()
        wake = self._next_check
        if self.leadership.leads and self._last_tick is not None:
            offset = self.leadership.offset or 0.0
            wake = min(wake, self._due() - offset)
        return max(MIN_SLEEP_S, wake - now)

    async def start_run(self) -> str | None:
        """``POST /api/runs`` on this replica: the run's id (see the module docstring).

        :raises RunInProgress: a run is going here, or no leader took the request in time.
        """
        if self.leadership.leads:
            run_id = uuid.uuid4().hex[:12]
            self.sched.trigger("api", run_id=run_id)
            return run_id
        return await self._forward()

    async def _forward(self) -> str | None:
        db = self.leadership.db
        async with db.begin() as conn:
            request = await leader_sql.request_run(conn, self.leadership.replica_id)
        deadline = self.sched.clock() + self.forward_wait_s
        while self.sched.clock() < deadline:
            await self.sched.pause(0.05)
            async with db.begin() as conn:
                if (run_id := await leader_sql.pending_request_run(conn, request)) is not None:
                    return run_id
        async with db.begin() as conn:
            if await leader_sql.withdraw_request(conn, request):
                raise RunInProgress(
                    f"the leader did not take the run within {self.forward_wait_s:g} s "
                    "(a run may be in progress; see /health)"
                )
            return await leader_sql.pending_request_run(conn, request)


def replicate(
    settings: Settings, store: Store, sched: Scheduler, state: ServiceState
) -> ReplicatedScheduler | None:
    """On PostgreSQL, every ``coinharvest run`` is a replica (`service.replicated`): the
    ticks run on the leader only. None on SQLite (the scheduler alone)."""
    if store.engine.dialect.name != "postgresql":
        return None
    metrics = state.metrics

    def changed(leads: bool, took_over: bool) -> None:
        metrics.leading(leads)
        if took_over:
            metrics.took_over()

    leadership = Leadership(
        store.engine, owner=store.owner, check_s=settings.leader_check_seconds, on_change=changed
    )
    metrics.leading(False)  # a follower until its first check says otherwise
    loop = ReplicatedScheduler(sched, leadership)
    state.start_run = loop.start_run
    state.replica_id = leadership.replica_id
    state.is_leader = lambda: leadership.leads
    log.info(
        "replica %s on PostgreSQL: it runs ticks while it leads (checked every %g s)",
        leadership.replica_id,
        settings.leader_check_seconds,
    )
    return loop
