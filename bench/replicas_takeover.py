"""Takeover time of replicas at a given LEADER_CHECK_SECONDS (default: the setting's default, 1).

Starts a throwaway PostgreSQL 15 and the emulator in their own processes, then three
``coinharvest run`` replicas on that database; kills the leader with ``kill -9`` N times
(a new replica replaces each), and measures, on the database's clock, the time from the
kill to another replica's ``leader_since``. Prints JSON (min / median / max and each value).

    python bench/replicas_takeover.py --kills 10 --check 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
from sources.outofprocess import emulator_process
from storage.pgserver import PgServer

#: Who leads now: a fresh heartbeat and a leader mark.
LEADER = (
    "SELECT pid FROM replicas WHERE leader_since IS NOT NULL AND heartbeat_at > "
    "clock_timestamp() - interval '3 seconds' ORDER BY leader_since DESC LIMIT 1"
)


class Cluster:
    """The replicas (``coinharvest run`` processes) sharing `env`."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        with self.log.open("ab") as out:
            command = [sys.executable, "-m", "coinharvest", "run"]
            proc = subprocess.Popen(command, env=self.env, stdout=out, stderr=out)
        self.procs[proc.pid] = proc

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        self.procs.pop(pid).wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            proc.wait(timeout=60)


#: Three replicas heard from in the last 2 s.
THREE = (
    "SELECT 1 WHERE (SELECT count(*) FROM replicas WHERE heartbeat_at > "
    "clock_timestamp() - interval '2 seconds') >= 3"
)


async def _until(conn: asyncpg.Connection, query: str, *args: object) -> Any:
    for _ in range(6000):
        try:
            if (value := await conn.fetchval(query, *args)) is not None:
                return value
        except asyncpg.UndefinedTableError:  # the first replica has not migrated yet
            pass
        await asyncio.sleep(0.01)
    raise RuntimeError(f"timed out waiting for: {query}")


async def measure(url: str, emu_urls: dict[str, str], kills: int, check_s: float) -> list[float]:
    """Kill the leader `kills` times; each takeover's seconds."""
    env = os.environ | {
        "DATABASE_URL": url, "LEADER_CHECK_SECONDS": str(check_s), "HTTP_PORT": "0",
        "COLLECTION_INTERVAL_MINUTES": "0.1", "LOG_LEVEL": "warning", "DEBUG": "",
        "COINGECKO_BASE_URL": emu_urls["coingecko"], "THREEXPL_BASE_URL": emu_urls["3xpl"],
        "NANO_BASE_URL": emu_urls["nano"], "NEARBLOCKS_BASE_URL": emu_urls["nearblocks"],
        "BLOCKCHAIR_BASE_URL": emu_urls["blockchair"], "BLOCKCHAIR_API_KEY": "bench",
    }  # fmt: skip
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as log:
        cluster = Cluster(env, Path(log.name))
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    times: list[float] = []
    try:
        for _ in range(3):
            cluster.start()
        for _ in range(kills):
            await _until(conn, THREE)
            await asyncio.sleep(2.0)  # ticks running
            pid = await _until(conn, LEADER)
            at = await conn.fetchval("SELECT clock_timestamp()")
            cluster.kill(pid)
            query = "SELECT leader_since FROM replicas WHERE leader_since > $1 AND pid <> $2"
            since = await _until(conn, query, at, pid)
            times.append((since - at).total_seconds())
            cluster.start()
    finally:
        cluster.stop()
        await conn.close()
    return times


async def main(kills: int, check_s: float) -> dict[str, Any]:
    pg = PgServer(fsync=True).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with emulator_process({"seed": 7}, Path(tmp)) as emu:
                times = await measure(pg.url, emu.base_urls, kills, check_s)
    finally:
        pg.stop()
    return {
        "leader_check_seconds": check_s,
        "kills": kills,
        "takeover_s": {
            "min": round(min(times), 3),
            "median": round(statistics.median(times), 3),
            "max": round(max(times), 3),
            "each": [round(t, 3) for t in times],
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--check", type=float, default=1.0, help="LEADER_CHECK_SECONDS")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.kills, args.check)), indent=2))
