"""Issue "Replicas": three ``coinharvest run`` processes on one PostgreSQL, the leader killed
with ``kill -9`` 20 times and a follower 5 times, against an emulator that counts every limit
violation. Real processes, a real database, scaled time (a 0.6 s interval, leadership checked
every 0.2 s; the same code runs at 60 minutes and 1 s).

What must hold: no tick runs twice (the fence), no tick is skipped, at most one tick per
kill runs late (the one due during the takeover), every takeover within 5 s, the dead
leader's run reads ``interrupted`` with its completed coins stored once, and the emulator
saw no violation. The figures are printed (``-s``) for docs/REPLICAS.md.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import pytest
from storage.conftest import pg_server  # noqa: F401  # the session's PostgreSQL server
from storage.pgserver import PgServer

from coinharvest.emulator import EmulatorConfig, RunningEmulator, run_emulator
from coinharvest.emulator.config import merge_config

from .conftest import service_env
from .replicakit import COINS, Outcome, Replicas, new_database, plain_dsn, summary

INTERVAL_MIN = "0.01"  # 0.6 s: the shortest interval the settings allow
CHECK_S = 0.2
LEADER_KILLS = 20
FOLLOWER_KILLS = 5
#: A tick is "late" when it ran this long after it was due (normally a few ms).
LATE_S = CHECK_S + 0.3
LIMITS = {"max_in_flight": 2, "min_interval_ms": 100, "rate": 600, "retry_after": "always"}
CLIENT = {
    "COINGECKO_MIN_INTERVAL_MS": "100",
    "THREEXPL_MIN_INTERVAL_MS": "100",
    "NANO_MIN_INTERVAL_MS": "100",
    "COINGECKO_RATE_LIMIT_PER_MINUTE": "600",
    "THREEXPL_RATE_LIMIT_PER_MINUTE": "600",
    "NANO_RATE_LIMIT_PER_MINUTE": "600",
    "MAX_COINGECKO_CONCURRENCY": "2",
    "MAX_THREEXPL_CONCURRENCY": "2",
    "HTTP_TIMEOUT_SECONDS": "2",
    "SHUTDOWN_GRACE_SECONDS": "2",
    "SHARED_LIMITS": "on",  # a new leader knows the dead one's last starts
}


def strict_scaled() -> EmulatorConfig:
    """Every limit enforced (violations counted), scaled to the short interval."""
    upstream = {"limits": LIMITS, "latency": {"fixed_ms": 5, "jitter_ms": 5}}
    patch = {"upstreams": {name: upstream for name in ("coingecko", "3xpl", "nano")}}
    # The node answers slowly: a run lasts ~0.25 s of its 0.6 s, so many kills land mid-run
    # (BTC and ETH stored, XNO still waiting) and leave a run to be marked interrupted.
    patch["upstreams"]["nano"] = {"limits": LIMITS, "latency": {"fixed_ms": 220, "jitter_ms": 20}}
    return merge_config(EmulatorConfig(seed=7, cache_s=0), patch)


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with run_emulator(strict_scaled()) as running:
        yield running


async def start_replicas(
    server: PgServer,
    emu: RunningEmulator,
    tmp_path: Path,
    name: str,
    *,
    count: int = 3,
    **extra: str,
) -> Replicas:
    """`count` replicas on a new database `name`, each heard from (heartbeat) already."""
    url = await new_database(server, name)
    coins = tmp_path / "coins.toml"
    coins.write_text(COINS)
    settings = {
        "DATABASE_URL": url,
        "COINS_FILE": str(coins),
        "COLLECTION_INTERVAL_MINUTES": INTERVAL_MIN,
        "LEADER_CHECK_SECONDS": str(CHECK_S),
        **CLIENT,
    }
    env = service_env(emu, tmp_path / "unused.db", **{**settings, **extra})
    replicas = Replicas(env, tmp_path, await asyncpg.connect(plain_dsn(url)))
    try:
        for replica in [await replicas.start() for _ in range(count)]:
            await replicas.wait_heard(replica)
    except BaseException:
        await replicas.kill_all()
        await replicas.conn.close()
        raise
    return replicas


async def test_kill_9_the_leader_20_times_and_a_follower_5_times(
    pg_server: PgServer,  # noqa: F811
    emu: RunningEmulator,
    tmp_path: Path,
) -> None:
    replicas = await start_replicas(pg_server, emu, tmp_path, "failover")
    rng = random.Random(16)
    plan = ["leader"] * LEADER_KILLS + ["follower"] * FOLLOWER_KILLS
    rng.shuffle(plan)
    takeovers: list[float] = []
    try:
        for kind in plan:
            await asyncio.sleep(rng.uniform(2.0, 4.0))  # ticks run in between
            leader = await replicas.leader()
            victim = (
                leader
                if kind == "leader"
                else rng.choice([r for r in replicas.alive if r is not leader])
            )
            at = await replicas.kill(victim)
            if kind == "leader":
                takeovers.append(await replicas.takeover_s(victim, at))
            await replicas.wait_heard(await replicas.start())  # back to three
        await asyncio.sleep(1.5)
        await replicas.stop_all()
        outcome = await Outcome.read(replicas.conn)
    except BaseException:
        await replicas.kill_all()
        print(replicas.logs_text())
        raise
    finally:
        await replicas.conn.close()
    stats = await emu.stats()
    late = outcome.late(LATE_S)
    interrupted = [r for r in outcome.runs.values() if r["status"] == "interrupted"]
    print(
        f"\n{len(outcome.ticks)} ticks, {len(plan)} kills; takeover {summary(takeovers)}; "
        f"late ticks {summary(late)}; {len(interrupted)} runs interrupted; "
        f"{stats['requests_total']} requests, violations {stats['violations']['total']}"
    )
    assert len(outcome.ticks) >= 170  # a few hundred ticks: ~200 on a 2-core VM
    assert max(takeovers) <= 5.0, takeovers
    assert outcome.missed() == 0, "a tick was skipped"
    assert len(late) <= LEADER_KILLS, late
    tick_runs = [t["run_id"] for t in outcome.ticks]
    assert len(set(tick_runs)) == len(tick_runs)
    lost = [run for run in tick_runs if run not in outcome.runs]
    assert len(lost) <= 1, f"claimed ticks with no run: {lost}"  # killed between the two
    assert not [r for r in outcome.runs.values() if r["status"] == "running"]
    assert outcome.duplicates == []
    for run in outcome.runs.values():
        if run["status"] == "ok":
            assert outcome.coins.get(run["run_id"]) == 3, run
    # Killed mid-run: the run reads interrupted, and the coins it completed stay stored.
    assert interrupted, "no kill landed mid-run"
    assert sum(outcome.coins.get(r["run_id"], 0) for r in interrupted) > 0
    assert stats["violations"]["total"] == 0, stats["violations"]
