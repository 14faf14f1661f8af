"""``POST /api/runs`` among replicas: every manual run is recorded in ``run_requests`` and run
by the leader, so runs never overlap across replicas and a dead leader's manual run is
marked ``interrupted`` like a scheduled one.

- On the leader: the request is recorded already claimed (only while its session holds the
  leader lock: the same fence as a tick) with its run row, then the run starts.
- On a follower: the request is recorded unclaimed; the leader takes it at its next check
  when idle; the follower waits up to `wait_s` for the run's id. If no leader took it, the
  request is withdrawn: `NoLeader` (HTTP 503) when no replica leads, else `RunInProgress`
  (HTTP 409: the leader is busy). A request nobody took within `wait_s` is dropped, so an
  asker that died or gave up never gets a run started long after.

`starts` is the lock every start decision of this replica takes (ticks, requests), so a
start never races another between "nothing is running" and "start".
"""

from __future__ import annotations

import asyncio
import uuid

from coinharvest.logs import get_logger
from coinharvest.service.leadership import DB_ERRORS, Leadership
from coinharvest.service.scheduler import RunInProgress, Scheduler
from coinharvest.storage import leader_sql

__all__ = ["ManualRuns", "NoLeader"]

log = get_logger("scheduler")


class NoLeader(RunInProgress):
    """No replica leads now: nobody can start the run (HTTP 503)."""


class ManualRuns:
    """Manual runs of one replica (see the module docstring)."""

    def __init__(
        self, sched: Scheduler, leadership: Leadership, starts: asyncio.Lock, wait_s: float
    ) -> None:
        self.sched = sched
        self.leadership = leadership
        self.starts = starts
        self.wait_s = wait_s
        #: The run id of the last run this replica started.
        self.current: str | None = None

    def claim(self) -> leader_sql.Claim:
        """A claim for a new run of this replica (its run row's values)."""
        lead = self.leadership
        run_id = uuid.uuid4().hex[:12]
        return leader_sql.Claim(lead.replica_id, run_id, lead.owner, len(self.sched.coins()))

    async def start_run(self) -> str | None:
        """``POST /api/runs`` on this replica: the run's id.

        :raises RunInProgress: a run is going (HTTP 409). :raises NoLeader: nobody leads, or
            the database does not answer (HTTP 503).
        """
        try:
            if self.leadership.leads and (run_id := await self._start_here()) is not None:
                return run_id
            return await self._forward()
        except DB_ERRORS as exc:
            raise NoLeader(f"cannot reach the database to start a run: {exc}") from exc

    async def _start_here(self) -> str | None:
        """As leader: record the request already claimed, then start it; None if this
        replica turns out not to lead (the request is then forwarded)."""
        async with self.starts:
            if self.sched.running or self.sched.stopping:
                raise RunInProgress("a collection run is already in progress")
            claim = self.claim()
            async with self.leadership.session() as conn:
                if await leader_sql.own_request(conn, claim) is None:
                    return None
            if not await self.launch(claim, "api"):
                raise RunInProgress("the scheduler is shutting down")
            return claim.run_id

    async def launch(self, claim: leader_sql.Claim, trigger: str) -> bool:
        """Start the run `claim` recorded. If it cannot start after all (a stop came while
        the claim was written): a scheduled run gives its tick back (the next leader runs
        it), a manual one reads interrupted. Whether it started."""
        try:
            self.sched.trigger(trigger, run_id=claim.run_id)
        except RunInProgress as exc:
            log.warning("run %s claimed but not started: %s", claim.run_id, exc)
            async with self.leadership.session() as conn:
                if trigger == "schedule":
                    await leader_sql.release_tick(conn, claim.run_id)
                else:
                    await leader_sql.unclaim(
                        conn, claim.run_id, f"interrupted: not started ({exc})"
                    )
            return False
        self.current = claim.run_id
        return True

    def own_run(self) -> str | None:
        """The run this replica started and is still running, if any."""
        return self.current if self.sched.running else None

    async def take_request(self) -> None:
        """As leader and idle: start the oldest request waiting (forwarded by a follower)."""
        async with self.starts:
            if self.sched.running or self.sched.stopping:
                return
            claim = self.claim()
            async with self.leadership.session() as conn:
                # Twice the askers' wait: a request is never dropped while its asker waits.
                request = await leader_sql.claim_request(conn, claim, 2 * self.wait_s)
            if request is not None:
                log.info("run request %d (forwarded): starting run %s", request, claim.run_id)
                await self.launch(claim, "api")

    async def _forward(self) -> str | None:
        db = self.leadership.db
        async with db.begin() as conn:
            request = await leader_sql.request_run(conn, self.leadership.replica_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            async with db.begin() as conn:
                if (run_id := await leader_sql.pending_request_run(conn, request)) is not None:
                    return run_id
        async with db.begin() as conn:  # decide inside, raise outside: a raise rolls back
            if not await leader_sql.withdraw_request(conn, request):
                run_id = await leader_sql.pending_request_run(conn, request)
                if run_id is not None:
                    return run_id  # taken meanwhile
            led = await leader_sql.leader_heard(conn, self.leadership.stale_s)
        if not led:
            raise NoLeader("no replica leads now; try again in a few seconds")
        raise RunInProgress(
            f"the leader did not take the run within {self.wait_s:g} s (a run is in progress)"
        )
