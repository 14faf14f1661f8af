"""Which replica leads: a PostgreSQL session advisory lock on a connection of its own.

Every ``coinharvest run`` on a PostgreSQL database is a replica. Each one calls `check()`
every ``LEADER_CHECK_SECONDS``: on its dedicated connection it re-checks that its session
holds the leader lock (or tries to take it) and writes its heartbeat, both on the database's
clock. The lock lives exactly as long as that session: when the leader's process dies the
server ends its session, and the next check of another replica takes the lock, so a
takeover comes within about one check interval (measured in docs/REPLICAS.md).

A replica that takes over clears the dead leader's mark and marks the runs the dead leader
started ``interrupted`` (their completed coins stay stored). If the dedicated connection
fails, the replica follows (it cannot prove it leads) and reconnects at the next check.

`offset` maps this process's monotonic clock onto the database's epoch seconds, measured at
every check (half the round trip), so the tick schedule follows the database's clock, never
this machine's wall clock.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinharvest.engine.limiter import Clock, loop_clock
from coinharvest.logs import get_logger
from coinharvest.storage import leader_sql, writes

__all__ = ["Leadership"]

log = get_logger("leader")

#: Why a dead leader's runs are marked interrupted.
TAKEN_OVER = "interrupted: its leader's process ended before the run finished (taken over)"


class Leadership:
    """This replica's side of the election (see the module docstring).

    :param db: the service's database (PostgreSQL); one connection is kept from it.
    :param owner: the `Store`'s owner tag (``host:pid``): runs it started are not orphans.
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
        self._conn: AsyncConnection | None = None
        self._took_over = False

    def db_now(self) -> float | None:
        """The database's epoch seconds now, as of the last check's offset."""
        return None if self.offset is None else self.clock() + self.offset

    async def check(self) -> bool:
        """Re-check (or take) the lock and write the heartbeat; whether this replica leads."""
        try:
            async with asyncio.timeout(max(3 * self.check_s, 2.0)):
                leads = await self._check()
        except Exception as exc:  # a dead connection or server: follow, reconnect next time
            await self._drop(f"{type(exc).__name__}: {exc}")
            leads = False
        self._became(leads)
        return leads

    async def connection(self) -> AsyncConnection:
        """The dedicated connection (autocommit), opened if needed."""
        if self._conn is None:
            conn = await self.db.connect()
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    async def aclose(self) -> None:
        """End the dedicated session: the lock, if held, is released with it.

        The connection is invalidated, not returned to the pool: a pooled session would
        keep the lock (session locks outlive transactions), and no replica could lead.
        """
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.invalidate()
                await conn.close()
            except Exception as exc:  # closing a broken connection: nothing left to release
                log.debug("closing the leader connection: %s", exc)

    async def _check(self) -> bool:
        conn = await self.connection()
        before = self.clock()
        check = await leader_sql.check_lock(conn)
        self.offset = check.db_now - (before + self.clock()) / 2
        since = await leader_sql.heartbeat(
            conn, self.replica_id, self.host, self.pid, self.http_url, check.leads
        )
        if check.leads and not self.leads:
            await self._take_over(conn)
        self.since = since
        return check.leads

    async def _take_over(self, conn: AsyncConnection) -> None:
        """First check as leader: clear the old leader's mark, interrupt its runs."""
        deposed = await leader_sql.depose_others(conn, self.replica_id)
        orphans = await leader_sql.orphan_runs(conn, self.owner)
        if orphans:
            await writes.interrupt_runs(conn, orphans, TAKEN_OVER)
        for replica, silent_s in deposed:
            log.warning(
                "took over as leader from %s (silent for %.1f s); its run(s) %s marked interrupted",
                replica,
                silent_s,
                ", ".join(orphans) or "(none)",
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
            log.warning("%s no longer leads: it follows", self.replica_id)
        if self.on_change is not None:
            self.on_change(leads, took_over)

    async def lost(self, why: str) -> None:
        """A statement on the dedicated connection failed: follow until a check proves
        otherwise (the session, and with it the lock, is ended)."""
        await self._drop(why)
        self._became(False)

    async def _drop(self, why: str) -> None:
        if self._conn is not None or self.leads:
            log.warning("leader connection lost (%s); following until it is back", why)
        await self.aclose()
