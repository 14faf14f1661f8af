"""Replicas of ``coinharvest run`` as real processes on one PostgreSQL, for the failover tests.

`Replicas` starts, finds and kills them (``kill -9``); what they did is read back from the
database afterwards (`Outcome`). Each replica's stderr goes to a file, printed when a test
fails. Time is the database's: kills and takeovers are stamped with ``clock_timestamp()``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
from storage.pgserver import PgServer

from .conftest import cli_command

__all__ = ["COINS", "Outcome", "Replicas", "new_database", "plain_dsn", "summary", "until"]

COINS = """
[[coin]]
symbol = "BTC"
name = "Bitcoin"
ids = { coingecko = "bitcoin", 3xpl = "bitcoin" }

[[coin]]
symbol = "ETH"
name = "Ethereum"
ids = { coingecko = "ethereum", 3xpl = "ethereum" }

[[coin]]
symbol = "XNO"
name = "Nano"
ids = { coingecko = "nano", nano = "nano" }
"""


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until `condition()` holds (polled every 20 ms); fail after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def plain_dsn(url: str) -> str:
    """asyncpg's DSN for a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def new_database(server: PgServer, name: str) -> str:
    """Create database `name` on `server`; its SQLAlchemy URL."""
    conn = await asyncpg.connect(plain_dsn(server.url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.url_for(name)


@dataclass
class Replica:
    """One ``coinharvest run`` process."""

    proc: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Replicas:
    """Replicas sharing `env` (DATABASE_URL and the rest), logs under `logs`."""

    env: dict[str, str]
    logs: Path
    conn: asyncpg.Connection
    alive: list[Replica] = field(default_factory=list)
    started: int = 0

    async def start(self) -> Replica:
        """Start one more replica (not waiting for it)."""
        self.started += 1
        log = self.logs / f"replica-{self.started}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *cli_command(), "run", env=self.env, stdout=out, stderr=out
            )
        replica = Replica(proc, log)
        self.alive.append(replica)
        return replica

    async def wait_heard(self, replica: Replica, timeout: float = 60.0) -> None:
        """Until `replica` has written a heartbeat."""
        await self._until(
            "SELECT 1 FROM replicas WHERE pid = $1", replica.pid, timeout=timeout, what="heartbeat"
        )

    async def leader(self, timeout: float = 30.0) -> Replica:
        """The replica that leads now (a fresh heartbeat and a leader mark)."""
        pid = await self._until(
            "SELECT pid FROM replicas WHERE leader_since IS NOT NULL AND heartbeat_at > "
            "clock_timestamp() - interval '2 seconds' ORDER BY leader_since DESC LIMIT 1",
            timeout=timeout,
            what="a leader",
        )
        return next(r for r in self.alive if r.pid == pid)

    async def urls(self, timeout: float = 30.0) -> dict[int, str]:
        """pid → base URL of each live replica's HTTP API (written with its heartbeat)."""
        for replica in self.alive:
            await self._until(
                "SELECT http_url FROM replicas WHERE pid = $1",
                replica.pid,
                timeout=timeout,
                what="an HTTP URL",
            )
        rows = await self.conn.fetch("SELECT pid, http_url FROM replicas")
        return {r["pid"]: r["http_url"] for r in rows}

    async def wait_runs(self, count: int, timeout: float = 30.0) -> None:
        """Until `count` runs have finished."""
        await self._until(
            "SELECT 1 WHERE (SELECT count(*) FROM runs WHERE status <> 'running') >= $1",
            count,
            timeout=timeout,
            what=f"{count} finished runs",
        )

    async def kill(self, replica: Replica) -> datetime:
        """``kill -9`` `replica`; the database's clock just before."""
        at: datetime = await self.conn.fetchval("SELECT clock_timestamp()")
        os.kill(replica.pid, signal.SIGKILL)
        await replica.proc.wait()
        self.alive.remove(replica)
        return at

    async def takeover_s(self, killed: Replica, at: datetime, timeout: float = 30.0) -> float:
        """Seconds from `at` until another replica leads (database clock)."""
        since = await self._until(
            "SELECT leader_since FROM replicas WHERE leader_since > $1 AND pid <> $2",
            at,
            killed.pid,
            timeout=timeout,
            what="a takeover",
        )
        assert isinstance(since, datetime)
        return (since - at).total_seconds()

    async def stop_all(self, timeout: float = 40.0) -> None:
        """SIGTERM every replica and wait for them to end."""
        for replica in self.alive:
            replica.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*(r.proc.wait() for r in self.alive)), timeout)

    async def kill_all(self) -> None:
        for replica in self.alive:
            if replica.proc.returncode is None:
                replica.proc.kill()
                await replica.proc.wait()

    def logs_text(self) -> str:
        parts = []
        for log in sorted(self.logs.glob("replica-*.log")):
            lines = log.read_text(errors="replace").splitlines()
            parts.append(f"--- {log.name} (last 30 lines)\n" + "\n".join(lines[-30:]))
        return "\n".join(parts)

    async def _until(self, query: str, *args: object, timeout: float, what: str) -> object:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                value = await self.conn.fetchval(query, *args)
            except asyncpg.UndefinedTableError:  # the first replica has not migrated yet
                value = None
            if value is not None:
                return value
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {what} within {timeout} s\n{self.logs_text()}")


@dataclass
class Outcome:
    """What the replicas left in the database."""

    ticks: list[asyncpg.Record]
    runs: dict[str, asyncpg.Record]
    duplicates: list[asyncpg.Record]
    coins: dict[str, int]

    @classmethod
    async def read(cls, conn: asyncpg.Connection) -> Outcome:
        ticks = await conn.fetch(
            "SELECT tick, late_s, run_id, replica_id FROM schedule_ticks ORDER BY tick"
        )
        runs = {r["run_id"]: r for r in await conn.fetch("SELECT run_id, status FROM runs")}
        duplicates = await conn.fetch(
            "SELECT run_id, symbol, metric, source, count(*) FROM observations "
            "GROUP BY run_id, symbol, metric, source HAVING count(*) > 1"
        )
        coins = {
            r["run_id"]: r["n"]
            for r in await conn.fetch(
                "SELECT run_id, count(*) AS n FROM coin_results GROUP BY run_id"
            )
        }
        return cls(ticks, runs, duplicates, coins)

    def missed(self) -> int:
        """Ticks nobody claimed between the second claimed tick and the last. (The first run
        starts cold, up to half an interval late, and may overrun the next boundary: that
        tick is skipped and counted like any overrun, not lost to a takeover.)"""
        numbers = [t["tick"] for t in self.ticks][1:]
        return (numbers[-1] - numbers[0] + 1) - len(numbers) if numbers else 0

    def late(self, threshold_s: float) -> list[float]:
        """How late the ticks that ran later than `threshold_s` were."""
        return [t["late_s"] for t in self.ticks if t["late_s"] > threshold_s]


def summary(values: list[float]) -> str:
    """min / median / max of `values` in seconds."""
    if not values:
        return "none"
    return (
        f"min {min(values):.3f} s, median {statistics.median(values):.3f} s, "
        f"max {max(values):.3f} s (n={len(values)})"
    )
