"""Limits shared by every process on one PostgreSQL (``SHARED_LIMITS=on``): the client.

With several processes collecting from one source with one API key (replicas, or separate
deployments), each process's own `SourceLimiter` cannot keep the source's limits: two
processes spacing their starts 2 s apart may start 1 ms apart together. `SharedLimits`
asks PostgreSQL instead (ratelimit-concurrency.md §9, on PostgreSQL instead of Redis): the
functions of `coinharvest.storage.shared_limiter_sql` decide every limit of one source in
one atomic step on the database's clock, so the processes' own clocks never matter.

How a job goes through it (`engine/execution.py`):

1. The local limiter admits the job and a global slot is taken, as without shared limits:
   local priorities decide which job of this process asks the database next, so each process
   asks only for the head of each source's lane.
2. `admit`: the job asks the database for a start, under a fresh lease, and sleeps for as
   long as the database says (cooldown, spacing, rolling window; plus up to 5 ms of jitter),
   polls every `poll_s` while the in-flight cap is full, and asks again. **It holds its
   global slot while it waits**: the known trade-off of asking only when a slot is held (a
   source throttled by the other processes can hold this process's slots). A cooldown the
   database reports is mirrored into the local limiter, so no other job of this process takes
   a slot just to wait for it.
3. `on_wire` (the wire gate, when the transport reports the send time): the headers wait until
   the spacing since the last request *on the wire* of any process has passed, then the start
   is stamped with the database's time of sending. Admission comes before the connection is
   open, and a request admitted later may be sent first.
4. `release` when the request has ended.

A lease lives as long as its holder: it names this client's owner number, whose session
advisory lock (`OwnerLock`) is held on a connection of its own. When the process dies, its
session ends and the source's next admission (any process's) drops its leases; expiry
(`lease_s`, above the job timeout) is the last resort. While the process lives without that
session, the database refuses its admissions and sends until the lock is taken again.

Failing closed: when the database cannot be asked (unreachable, too slow), the job's request
is not sent; its outcome is a `TransientError` (logged), retried through the lane like any
other. A spent quota (counted in the database per UTC day and month of its clock) is seeded
into the local quota, so the run defers the source's jobs as it does for a local quota.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.engine.limiter import Clock, SourceLimiter
from coinharvest.errors import ConfigError, TransientError
from coinharvest.logs import get_logger
from coinharvest.storage.shared_limiter_sql import NEXT_OWNER, RELEASE, TAKE_OWNER

__all__ = [
    "OwnerLock",
    "OwnerLost",
    "SharedLimits",
    "SharedLimitsDown",
    "SharedQuotaSpent",
    "check_shared_limits_url",
]

log = get_logger("limiter")

_ACQUIRE = text(
    "SELECT * FROM shared_limit_acquire(:k, :lease, :owner, :lease_ms, :cap, :spacing_ms,"
    " :window_ms, :window_n, :per_day, :per_month, :learned_cap, :learned_spacing_ms,"
    " :learned_ttl_ms)"
)
_SEND = text("SELECT shared_limit_send(:k, :lease, :lease_ms, :spacing_ms)")
_COOL_DOWN = text("SELECT shared_limit_cool_down(:k, :seconds)")
_RELEASE = text(RELEASE.replace("$1", ":k").replace("$2", ":lease"))

#: Most jitter added to a wait the database asked for (never taken off it).
JITTER_S = 0.005

#: The database's answer when the owner's lock is not held (acquire) or the lease is gone or
#: its owner dead (send): nothing was recorded, nothing may be sent.
_DEAD = -3


def check_shared_limits_url(shared: bool, url: str) -> None:
    """Raise `ConfigError` when ``SHARED_LIMITS=on`` but the database is not PostgreSQL."""
    if shared and not url.startswith("postgresql"):
        raise ConfigError(
            "SHARED_LIMITS=on needs DATABASE_URL=postgresql+asyncpg://...: the limits are"
            " shared through PostgreSQL"
        )


class SharedLimitsDown(TransientError):
    """The shared limiter's database could not be asked: the request was not sent."""

    def __init__(self, source: str, exc: BaseException) -> None:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        super().__init__(
            source, f"shared limits unavailable ({type(exc).__name__}: {detail[:200]})"
        )


class OwnerLost(ConnectionError):
    """This client's owner lock could not be held (or the database no longer sees it)."""


class OwnerLock:
    """This client's liveness as PostgreSQL sees it: the session advisory lock
    ``(OWNER_NS, number)`` held on a raw asyncpg connection of its own, outside the engine's
    pool (a pooled session would keep the lock after its "close", and take a pool slot).

    The lock lives exactly as long as that session: a killed process's socket is closed by
    its kernel, the server ends the session, and the owner's leases count for nobody.
    """

    def __init__(self, db: AsyncEngine, *, timeout_s: float) -> None:
        self._db = db
        self.timeout_s = timeout_s
        #: The owner number (None until first taken); kept across a lost session, so that
        #: the same number is taken again when it is free.
        self.number: int | None = None
        #: Counts the sessions taken: `lost` ends only the session it is told about.
        self.session = 0
        self._conn: Any = None
        self._taking = asyncio.Lock()

    async def held(self) -> int:
        """The owner number, its lock held by a live session; taken (again) first when there
        is no session. :raises OwnerLost: it could not be taken (the caller fails closed)."""
        if self.number is not None and self._conn is not None and not self._conn.is_closed():
            return self.number
        async with self._taking:
            if self.number is None or self._conn is None or self._conn.is_closed():
                await self._take()
        assert self.number is not None  # set by _take, or it raised
        return self.number

    async def lost(self, session: int) -> None:
        """The database did not see the lock of `session`: end it (unless already replaced
        by a newer one, for a concurrent caller); the next `held` takes the lock again."""
        if session == self.session:
            await self.aclose()

    async def aclose(self) -> None:
        """End the session (the lock goes with it): closed politely within `timeout_s`,
        else cut (`terminate`)."""
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close(timeout=self.timeout_s)
        except Exception as exc:  # a broken connection: cut it, nothing else holds the lock
            log.debug("closing the owner lock's connection: %s", exc)
            conn.terminate()

    async def _take(self) -> None:
        import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

        await self.aclose()
        args, kwargs = self._db.dialect.create_connect_args(self._db.url)
        accepted = inspect.signature(asyncpg.connect).parameters
        kwargs = {name: value for name, value in kwargs.items() if name in accepted}
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = await asyncpg.connect(*args, **kwargs)
                try:
                    self.number = await self._lock(conn)
                except BaseException:
                    conn.terminate()
                    raise
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise OwnerLost(f"owner lock not taken ({type(exc).__name__}: {exc})") from exc
        self._conn, self.session = conn, self.session + 1

    async def _lock(self, conn: Any) -> int:
        """Lock the same number again when it is free (its leases not yet dropped count
        again), else a new one (a number still held, e.g. by our old half-open session, or
        reused by the cycling sequence, is refused by the lock itself)."""
        if self.number is not None and await conn.fetchval(TAKE_OWNER, self.number):
            log.info("shared limits: owner lock %d taken again", self.number)
            return self.number
        for _ in range(100):
            number = int(await conn.fetchval(NEXT_OWNER))
            if await conn.fetchval(TAKE_OWNER, number):
                if self.number is not None:
                    log.warning("shared limits: owner %d is now owner %d", self.number, number)
                return number
        raise OwnerLost("no free owner number in 100 tries")


class SharedQuotaSpent(TransientError):
    """The quota counted in the database is spent: the request was not sent. Transient: the
    job goes back to its lane, where the (now seeded) local quota defers it."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, reason)
        self.message = reason
        self.args = (reason,)  # `reason` names the source already


class SharedLimits:
    """The processes' shared limiter (see the module docstring).

    :param db: the PostgreSQL engine (migrated to revision 0007 or later).
    :param key_ids: each source's API-key fingerprint (`adaptive.key_id`): processes share a
        source's limits when they use the same key; a source missing here has key ``""``.
    :param lease_s: how long an admitted request's slot stays taken without a release (set
        above the job timeout: only a crashed process's lease should ever expire).
    :param poll_s: how often to ask again while the in-flight cap is full.
    :param timeout_s: longest wait for one database call before failing closed.
    :param learned_ttl_s: how long an adaptive controller's report binds the others.
    """

    def __init__(
        self,
        db: AsyncEngine,
        key_ids: Mapping[str, str],
        *,
        lease_s: float,
        poll_s: float = 0.02,
        timeout_s: float = 5.0,
        learned_ttl_s: float = 600.0,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db.execution_options(isolation_level="AUTOCOMMIT")
        self._keys = dict(key_ids)
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.learned_ttl_s = learned_ttl_s
        self._rng = rng or random.Random()
        self._reported: dict[str, tuple[int, float, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: This client's liveness (taken at the first admission); see the module docstring.
        self.owner = OwnerLock(db, timeout_s=timeout_s)

    def key(self, source: str) -> str:
        """The limit key of `source`: its name and its API key's fingerprint."""
        return f"{source}:{self._keys.get(source, '')}"

    async def admit(
        self, limiter: SourceLimiter, lease: uuid.UUID, clock: Clock, *, adaptive: bool = False
    ) -> TransientError | None:
        """Wait until the database records a start of `limiter`'s source under `lease`.

        :param adaptive: the source's limiter is moved by an adaptive controller: its cap and
            spacing are reported, and bind every process for `learned_ttl_s`.
        :returns: None once admitted (then `release` the lease when the request has ended);
            else the job's outcome instead of sending, with nothing recorded: the quota is
            spent, or the database could not be asked (`SharedLimitsDown`).
        """
        params = self._acquire_params(limiter, lease, adaptive)
        retook = False
        while True:
            try:
                params["owner"] = await self.owner.held()
                session = self.owner.session
                row = await self._call(_ACQUIRE, params)
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                return self._down(limiter.name, exc)
            wait_ms, why, used_day, used_month = row
            if wait_ms == 0:
                return None
            if wait_ms == _DEAD:  # our session is gone though the connection looked alive
                await self.owner.lost(session)
                if retook:
                    lost = OwnerLost("the database does not see this process's owner lock")
                    return self._down(limiter.name, lost)
                retook = True
                continue
            if wait_ms == -2:
                return self._quota_spent(limiter, used_day, used_month)
            delay = self.poll_s if wait_ms == -1 else wait_ms / 1000.0
            if why == "cooldown":
                limiter.cool_down(clock() + delay)
            await asyncio.sleep(delay + self._rng.uniform(0.0, JITTER_S))

    async def on_wire(self, limiter: SourceLimiter, lease: uuid.UUID) -> None:
        """Hold a request's headers until the spacing since the last request of any process
        on the wire has passed; then stamp its start with the database's time.

        Without spacing there is nothing to wait for: no call (the window counts starts
        from admission, a few ms early at most, which the spacing guard covers).

        :raises SharedLimitsDown: the database could not be asked, or the lease no longer
            counts (its owner's session ended, so others may have its slot): nothing is sent.
        """
        if limiter.spacing_s <= 0:
            return
        params = {
            "k": self.key(limiter.name),
            "lease": lease,
            "lease_ms": self.lease_s * 1000.0,
            "spacing_ms": limiter.spacing_s * 1000.0,
        }
        while True:
            try:
                (wait_ms,) = await self._call(_SEND, params)
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                raise self._down(limiter.name, exc) from exc
            if wait_ms == _DEAD:
                raise self._down(limiter.name, OwnerLost("the lease no longer counts"))
            if wait_ms <= 0:
                return
            await asyncio.sleep(wait_ms / 1000.0)

    async def release(self, source: str, lease: uuid.UUID) -> None:
        """Give `lease` back. The delete runs in its own task, which a cancellation of the
        caller does not stop; a failure is logged (the lease then expires)."""
        params = {"k": self.key(source), "lease": lease}
        await asyncio.shield(self._spawn(self._call(_RELEASE, params, rows=False), "release"))

    def cool_down(self, source: str, seconds: float) -> None:
        """Pause `source` for `seconds` from now (database clock) for every process; in the
        background (a failure is logged: the local cooldown still holds this process)."""
        params = {"k": self.key(source), "seconds": max(0.0, seconds)}
        self._spawn(self._call(_COOL_DOWN, params), "cooldown")

    async def aclose(self) -> None:
        """Wait for the background releases and cooldowns still running, then end the owner
        lock's session (leases still held then count for nobody)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.owner.aclose()

    def _acquire_params(
        self, limiter: SourceLimiter, lease: uuid.UUID, adaptive: bool
    ) -> dict[str, Any]:
        limits = limiter.limits
        params: dict[str, Any] = {
            "k": self.key(limiter.name),
            "lease": lease,
            "lease_ms": self.lease_s * 1000.0,
            "cap": limiter.cap,
            "spacing_ms": limiter.spacing_s * 1000.0,
            "window_ms": limits.window_s * 1000.0,
            "window_n": limits.rate_per_window,
            "per_day": limits.quota_per_day,
            "per_month": limits.quota_per_month,
            "learned_cap": None,
            "learned_spacing_ms": None,
            "learned_ttl_ms": self.learned_ttl_s * 1000.0,
        }
        if adaptive and self._should_report(limiter):
            params["learned_cap"] = limiter.cap
            params["learned_spacing_ms"] = limiter.spacing_s * 1000.0
        return params

    def _should_report(self, limiter: SourceLimiter) -> bool:
        """Report a controller's limits when they changed, and again before they wear off."""
        now = time.monotonic()
        last = self._reported.get(limiter.name)
        same = last is not None and last[:2] == (limiter.cap, limiter.spacing_s)
        if same and last is not None and now - last[2] < self.learned_ttl_s / 2:
            return False
        self._reported[limiter.name] = (limiter.cap, limiter.spacing_s, now)
        return True

    def _quota_spent(
        self, limiter: SourceLimiter, used_day: int, used_month: int
    ) -> TransientError:
        if limiter.quota is not None:
            limiter.quota.seed(used_day, used_month)
        reason = limiter.quota_refusal() or (
            f"{limiter.name}'s quota is spent (shared count: {used_day:,} requests today,"
            f" {used_month:,} this month)"
        )
        log.warning("⏳ %s (counted by every process on the database)", reason)
        return SharedQuotaSpent(limiter.name, reason)

    def _down(self, source: str, exc: BaseException) -> SharedLimitsDown:
        error = SharedLimitsDown(source, exc)
        log.warning("%s; the request is not sent", error)
        return error

    async def _call(self, statement: Any, params: Mapping[str, Any], *, rows: bool = True) -> Any:
        """One statement in its own (autocommitted) transaction, within `timeout_s`."""
        async with asyncio.timeout(self.timeout_s), self._db.connect() as conn:
            result = await conn.execute(statement, params)
            return result.one() if rows else None

    def _spawn(self, call: Any, what: str) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await call
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                log.warning("shared limits: %s failed (%s: %s)", what, type(exc).__name__, exc)

        task = asyncio.get_running_loop().create_task(run(), name=f"shared-limits-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
