"""Which replica leads: a PostgreSQL session advisory lock on a connection of its own.

Every ``coinharvest run`` on a PostgreSQL database is a replica. Each one calls `check()`
every ``LEADER_CHECK_SECONDS``: on its dedicated connection it re-checks that its session
holds the leader lock (or tries to take it) and writes its heartbeat, both on the database's
clock. The lock lives exactly as long as that session: when the leader's process dies the
server ends its session, and the next check of another replica takes the lock, so a
takeover comes within about one check interval (measured in docs/REPLICAS.md). The session
is also ended by the server after `stale_s` idle (``idle_session_timeout``), so a leader
that is paused, frozen or cut off stops leading within seconds instead of hours.

A replica that takes over clears the dead leader's mark and marks the runs the dead leader
started ``interrupted`` (their completed coins stay stored). If the dedicated connection
fails, the replica follows (it cannot prove it leads) and reconnects at the next check. A
replica that stops cleanly steps down (`step_down`): its successor does not count a takeover.

`offset` maps this process's monotonic clock onto the database's epoch seconds, measured at
every check (half the round trip), so the tick schedule follows the database's clock, never
this machine's wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from coinharvest.engine.limiter import Clock, loop_clock
from coinharvest.logs import get_logger
from coinharvest.storage import leader_sql, writes
from coinharvest.storage.replica_queries import stale_after_s

__all__ = ["DB_ERRORS", "TAKEN_OVER", "Leadership"]

log = get_logger("leader")

#: Why a dead leader's runs are marked interrupted.
TAKEN_OVER = "interrupted: its leader's process ended before the run finished (taken over)"
#: What a failing statement on the database raises (anything else is a bug: not swallowed).
DB_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


class Leadership:
    """This replica's side of the election (see the module docstring).

    :param db: the service's database (PostgreSQL); the dedicated connection is opened on
        its URL outside its pool (a pooled session would outlive "close", with the lock).
    :param owner: the `Store`'s owner tag (``host:pid``), written on the runs it claims.
    :param on_change: told ``(leads, took_over)`` when the role changes (metrics).
    """

    def __init__(
        self,
        db: AsyncEngine,
        *,
        owner: str,
        check_s: float,
        http_url: str | None = None,
        clock: Clock = loop_clock,
        on_change: Callable[[bool, bool], None] | None = None,
    ) -> None:
        self.db = db
        self.owner = owner
        self.check_s = check_s
        #: A heartbeat older than this is a dead replica's; also the session's idle timeout.
        self.stale_s = stale_after_s(check_s)
        self.http_url = http_url
        self.clock = clock
        self.on_change = on_change
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.replica_id = f"{self.host}:{self.pid}:{secrets.token_hex(3)}"
        self.leads = False
        self.since: datetime | None = None
        #: Database epoch seconds minus this clock (None until the first check).
        self.offset: float | None = None
        self._own: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None
        # One statement group at a time on the dedicated connection (the loop and the API
        # share it; an AsyncConnection is not for concurrent use).
        self._lock = asyncio.Lock()
        self._took_over = False
        #: The run this process is running now (not an orphan at a takeover), if any.
        self.own_run: Callable[[], str | None] = lambda: None
        #: When the leader this replica took over from was last heard of (database epoch
        #: seconds); None when it took over from nobody (a fresh start, a clean step-down).
        self.previous_heard: float | None = None

    def db_now(self) -> float | None:
        """The database's epoch seconds now, as of the last check's offset."""
        return None if self.offset is None else self.clock() + self.offset

    @property
    def timeout_s(self) -> float:
        """Longest a statement group on the dedicated connection may take (a black-holed
        connection must not hang the loop: past this the replica follows)."""
        return max(3 * self.check_s, 2.0)

    async def check(self) -> bool:
        """Re-check (or take) the lock and write the heartbeat; whether this replica leads."""
        try:
            async with self.session() as conn:
                leads = await self._check(conn)
        except DB_ERRORS as exc:  # a dead connection or server: follow, reconnect next time
            await self._drop(f"{type(exc).__name__}: {exc}")
            leads = False
        self._became(leads)
        return leads

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncConnection]:
        """The dedicated connection for one group of statements: exclusive, and bounded by
        `timeout_s` (TimeoutError, one of `DB_ERRORS`)."""
        async with self._lock, asyncio.timeout(self.timeout_s):
            yield await self._connection()

    async def _connection(self) -> AsyncConnection:
        """The dedicated connection (autocommit), opened if needed."""
        if self._conn is None:
            if self._own is None:
                url = self.db.url.render_as_string(hide_password=False)
                args = {"timeout": self.timeout_s, "command_timeout": self.timeout_s}
                self._own = create_async_engine(url, poolclass=NullPool, connect_args=args)
            conn = await self._own.connect()
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                await leader_sql.limit_idle(self._conn, self.stale_s)
            except DB_ERRORS as exc:  # PostgreSQL < 14: a frozen leader keeps its lock
                log.warning(
                    "idle_session_timeout not available (%s): a paused leader keeps "
                    "the lead until its connection dies",
                    type(exc).__name__,
                )
        return self._conn

    async def lost(self, why: str) -> None:
        """A statement on the dedicated connection failed: follow until a check proves
        otherwise (the session, and with it the lock, is ended)."""
        await self._drop(why)
        self._became(False)

    async def step_down(self) -> None:
        """A clean stop: clear the leader mark, end the session (the lock goes with it)."""
        if self.leads and self._conn is not None:
            try:
                async with self.session() as conn:
                    await leader_sql.step_down(conn, self.replica_id)
            except DB_ERRORS as exc:  # the successor will count a takeover: no harm
                log.debug("stepping down: %s", exc)
        await self.aclose()
        self._became(False)
        if self._own is not None:
            await self._own.dispose()
            self._own = None

    async def aclose(self) -> None:
        """End the dedicated session: the lock, if held, is released with it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.invalidate()
                await conn.close()
            except DB_ERRORS as exc:  # closing a broken connection: nothing left to release
                log.debug("closing the leader connection: %s", exc)

    async def _check(self, conn: AsyncConnection) -> bool:
        before = self.clock()
        check = await leader_sql.check_lock(conn)
        self.offset = check.db_now - (before + self.clock()) / 2
        if check.leads and not self.leads:
            await self._take_over(conn, check.db_now)
        self.since = await leader_sql.heartbeat(
            conn, self.replica_id, self.host, self.pid, self.http_url, check.leads
        )
        return check.leads

    async def _take_over(self, conn: AsyncConnection, now: float) -> None:
        """First check as leader: clear the old leader's mark, interrupt its runs."""
        deposed = await leader_sql.depose_others(conn, self.replica_id)
        silent = [silent_s for _, silent_s in deposed]
        self.previous_heard = now - min(silent) if silent else None
        orphans = await leader_sql.orphan_runs(conn, self.own_run())
        if orphans:
            await writes.interrupt_runs(conn, sorted(orphans), TAKEN_OVER)
        for replica, silent_s in deposed:
            runs = sorted(run for run, owner in orphans.items() if owner == replica)
            log.warning(
                "took over as leader from %s (silent for %.1f s); its run(s) marked "
                "interrupted: %s",
                replica,
                silent_s,
                ", ".join(runs) or "none",
            )
        gone = {owner for owner in orphans.values()} - {replica for replica, _ in deposed}
        for replica in sorted(gone):
            runs = sorted(run for run, owner in orphans.items() if owner == replica)
            log.warning(
                "run(s) of %s, no longer leading, marked interrupted: %s", replica, ", ".join(runs)
            )
        self._took_over = bool(deposed)

    def _became(self, leads: bool) -> None:
        if leads == self.leads:
            return
        self.leads = leads
        took_over = leads and self._took_over
        if leads:
            log.info("%s leads (since %s)", self.replica_id, self.since)
        else:
            log.info("%s no longer leads: it follows", self.replica_id)
        if self.on_change is not None:
            self.on_change(leads, took_over)

    async def _drop(self, why: str) -> None:
        if self._conn is not None or self.leads:
            log.warning("leader connection lost (%s); following until it is back", why)
        await self.aclose()
