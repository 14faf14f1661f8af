"""Service mode with replicas: the leader runs each tick once, on the database's clock.

Ticks are numbered from the epoch on the database's clock: tick ``k`` of an interval ``I``
is due at ``k·I`` (plus an optional random jitter, at most half an interval), so every
replica agrees on which tick is due whatever its own clock says (reference
ratelimit-concurrency.md §7.3). The loop, on each replica::

    every LEADER_CHECK_SECONDS: check the lock, write the heartbeat (`Leadership.check`);
        as leader and idle, take a forwarded run request (`ManualRuns.take_request`)
    as leader, idle, with a tick due: claim it in ``schedule_ticks`` together with its run
        row (the fence: a tick is claimed once, only by the lock's holder), then start it

A new leader continues after the newest tick anyone claimed: a tick the dead leader was
running is not run again (its run reads ``interrupted``); a tick due during the takeover is
run at once, late (``schedule_ticks.late_s``). Ticks that came due after the old leader
went silent (or, when nobody led, every other replica) and before this one led are logged
and counted as skipped (only the newest runs). The first run of a new series (a fresh
database, a new interval) starts at once and claims the nearest boundary: the tick due now,
or the next one when that is nearer (a fresh start 5 s before the hour is not followed by a
second run at :00).
A tick due while a run is still going is skipped and counted, as in one process. A replica
that stops leading while its run goes on stops the run (no new jobs): another leader may
start the next tick. On a stop request the leader winds its run down, heartbeating, then
steps down. Only database errors make a replica follow; any other error ends the loop
(``/health`` then answers 503).
"""

from __future__ import annotations

import asyncio
import math
import random

from coinharvest.config import Settings
from coinharvest.logs import get_logger
from coinharvest.service.api import ServiceState
from coinharvest.service.leadership import DB_ERRORS, Leadership
from coinharvest.service.manual_runs import ManualRuns
from coinharvest.service.scheduler import Scheduler, SchedulerStats
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
        self.jitter_s = min(sched.jitter_s, sched.interval_s / 2)
        if self.jitter_s < sched.jitter_s:
            log.warning(
                "COLLECTION_JITTER_SECONDS capped at half the interval (%g s)", self.jitter_s
            )
        self._starts = asyncio.Lock()
        wait_s = forward_wait_s or max(3.0, 4 * leadership.check_s)
        self.manual = ManualRuns(sched, leadership, self._starts, wait_s)
        self.start_run = self.manual.start_run
        leadership.own_run = self.manual.own_run
        self._last_tick: int | None = None  # the newest tick claimed or passed
        self._jitter = 0.0
        self._new_series = False
        self._next_check = -math.inf
        self._next_request = -math.inf

    async def serve(self) -> SchedulerStats:
        """Check, lead, tick until the scheduler is asked to stop; then wind down
        (heartbeating while it does) and step down."""
        sched = self.sched
        try:
            while not sched.stopping:
                try:
                    await self._step()
                except DB_ERRORS as exc:  # the database failed mid-step: the next check decides
                    await self.leadership.lost(f"{type(exc).__name__}: {exc}")
                    self._next_check = sched.clock() + self.leadership.check_s
                await sched.pause(self._sleep_s())
            await self._wind_down()
        finally:
            await self.leadership.step_down()
        return sched.stats

    async def _wind_down(self) -> None:
        wind = asyncio.ensure_future(self.sched.wind_down())
        while not wind.done():
            if self.leadership.leads:  # stay the visible, fenced leader until the run ends
                await self.leadership.check()
            await asyncio.wait({wind}, timeout=self.leadership.check_s)
        await wind

    async def _step(self) -> None:
        lead = self.leadership
        if self.sched.clock() >= self._next_check:
            was_leading = lead.leads
            self._next_check = self.sched.clock() + lead.check_s
            leads = await lead.check()
            if leads and not was_leading:
                await self._continue_schedule()
            elif was_leading and not leads and self.sched.running:
                log.warning("lost the lead during a run: stopping it (no new jobs)")
                self.sched.engine.stop()
        if lead.leads and self._tick_due():  # a tick due at a takeover before any request
            await self._tick()
        if lead.leads and self.sched.clock() >= self._next_request:
            self._next_request = self._next_check
            await self.manual.take_request()

    async def _continue_schedule(self) -> None:
        """Just became leader: go on after the newest tick anyone claimed (see the module
        docstring for ticks missed meanwhile and a new series)."""
        async with self.leadership.session() as conn:
            last = await leader_sql.last_tick(conn, self.interval_ms)
            heard = self.leadership.previous_heard
            if heard is None:  # nobody led: when was any other replica last heard of?
                heard = await leader_sql.others_heard(conn, self.leadership.replica_id)
        if last is not None and self._last_tick is not None:
            last = max(last, self._last_tick)  # its own lead back: what it passed stays passed
        now = self.leadership.db_now()
        assert now is not None  # a check succeeded
        current = math.floor(now * 1000 / self.interval_ms)
        self._jitter = 0.0  # a tick missed during a takeover runs at once
        self._new_series = last is None
        if last is None:
            self._last_tick = current - 1
            return
        self._last_tick = max(last, current - 1)
        # Ticks due while the old leader was still heard of were its business (it ran or
        # skipped them); those due after it went silent passed with no leader.
        if (missed := current - max(last + 1, self._silent_since(heard))) > 0:
            self.sched.skipped(
                f"{missed} tick(s) came due with no leader; running the tick due now", missed
            )
        if last >= current:
            log.info("tick %d already run; next tick in %.1f s", last, self._due() - now)

    def _silent_since(self, heard: float | None) -> int:
        """The first tick due after `heard` (a very old one if nobody was ever heard of)."""
        if heard is None:
            return -(2**62)
        return math.floor(heard * 1000 / self.interval_ms) + 1

    def _due(self) -> float:
        """Database epoch seconds when the tick after the last one is due (with jitter)."""
        assert self._last_tick is not None
        return (self._last_tick + 1) * self.interval_ms / 1000 + self._jitter

    def _tick_due(self) -> bool:
        now = self.leadership.db_now()
        return self._last_tick is not None and now is not None and now >= self._due()

    async def _tick(self) -> None:
        async with self._starts:
            if self.sched.stopping:
                return
            if self.sched.running:
                now = self.leadership.db_now() or 0.0
                self._passed(math.floor(now * 1000 / self.interval_ms))
                self.sched.stats.ticks += 1
                self.sched.skipped("previous collection still running; tick skipped")
                return
            claim = self.manual.claim()
            after = self._last_tick if self._last_tick is not None else -1
            async with self.leadership.session() as conn:
                claimed = await leader_sql.claim_tick(
                    conn, self.interval_ms, claim, after, self._jitter, nearest=self._new_series
                )
            if claimed is None:
                await self._not_claimed()
                return
            await self._start(claimed, claim)

    async def _start(self, claimed: tuple[int, float], claim: leader_sql.Claim) -> None:
        tick, late_s = claimed
        self._new_series = False
        self._passed(tick)
        self.sched.stats.ticks += 1
        log.info("tick %d: starting run %s (%.2f s after it was due)", tick, claim.run_id, late_s)
        await self.manual.launch(claim, "schedule")

    async def _not_claimed(self) -> None:
        """Early by the offset's error, lost the lock, or someone else claimed it: re-read."""
        async with self.leadership.session() as conn:
            last = await leader_sql.last_tick(conn, self.interval_ms)
        if last is not None and (self._last_tick is None or last > self._last_tick):
            self._passed(last)
        self._next_check = -math.inf  # re-check the lock before trying again

    def _passed(self, tick: int) -> None:
        self._last_tick = tick if self._last_tick is None else max(tick, self._last_tick)
        self._jitter = self.rng.uniform(0.0, self.jitter_s)

    def _sleep_s(self) -> float:
        now = self.sched.clock()
        wake = self._next_check
        if self.leadership.leads and self._last_tick is not None:
            offset = self.leadership.offset or 0.0
            wake = min(wake, self._due() - offset)
        return max(MIN_SLEEP_S, wake - now)


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
