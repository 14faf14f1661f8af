"""The issue's test of shared limits: two `coinharvest collect` processes, one CoinGecko key.

Each process collects 1,000 coins at once (40 batches of 25) from one emulator that enforces
CoinGecko's limits on that key (scaled down so the test is short: 50 ms spacing, 3 in
flight). With ``SHARED_LIMITS=on`` the two processes keep the limits together: 0 violations,
every coin stored. With ``off`` each process keeps them on its own, and together they break
them: the emulator counts the violations (why the feature exists).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sources.outofprocess import EmulatorProcess, emulator_process
from sqlalchemy import text

from coinharvest.emulator.catalog import synthetic_id
from coinharvest.storage import open_database

COINS = 1000
SPACING_MS = 50
IN_FLIGHT = 3
KEY = "CG-shared-key-0123456789"


def _coins_file(folder: Path) -> Path:
    path = folder / "coins.toml"
    path.write_text(
        "".join(
            f'[[coin]]\nsymbol = "S{i:04d}"\nname = "Synth {i}"\n'
            f'ids = {{ coingecko = "{synthetic_id(i)}" }}\n\n'
            for i in range(1, COINS + 1)
        )
    )
    return path


def _env(folder: Path, db_url: str, base_url: str, shared: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("COINGECKO", "COINHARVEST"))}
    return keep | {
        "DATABASE_URL": db_url,
        "COINS_FILE": str(_coins_file(folder)),
        "COINGECKO_BASE_URL": base_url,
        "COINGECKO_API_KEY": KEY,
        "COINGECKO_BATCH_SIZE": "25",
        "COINGECKO_MIN_INTERVAL_MS": str(SPACING_MS),
        "COINGECKO_RATE_LIMIT_PER_MINUTE": "1000",
        "MAX_COINGECKO_CONCURRENCY": str(IN_FLIGHT),
        "MAX_COLLECTION_CONCURRENCY": "5",
        "HTTP_TIMEOUT_SECONDS": "5",
        "SHARED_LIMITS": shared,
        "DEBUG": "",
        "LOG_LEVEL": "WARNING",
    }


async def _start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coinharvest", "collect",
        env=env, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _finish(procs: list[asyncio.subprocess.Process], emu: EmulatorProcess) -> None:
    """Wait for both processes; all of them must succeed."""
    for proc in procs:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, err.decode(errors="replace")[-3000:]


async def _until_violation(procs: list[asyncio.subprocess.Process], emu: EmulatorProcess) -> None:
    """Stop both processes at the first violation the emulator counts (the 429s it answers
    make the clients pause for a while: their end is not what this test is about)."""
    try:
        for _ in range(600):
            if (await emu.stats())["violations"]["total"] > 0:
                return
            if all(p.returncode is not None for p in procs):
                return
            await asyncio.sleep(0.05)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


async def _two_processes(shared: str, pg_url: str, tmp_path: Path) -> tuple[Any, int]:
    config = {
        "universe": COINS,
        "upstreams": {
            "coingecko": {
                "limits": {"max_in_flight": IN_FLIGHT, "min_interval_ms": SPACING_MS,
                           "rate": 1000, "window_s": 60},
                "latency": {"fixed_ms": 60, "jitter_ms": 40},
            }
        },
    }  # fmt: skip
    engine = await open_database(pg_url)  # migrated once here: the processes only check it
    try:
        async with emulator_process(config, tmp_path) as emu:
            env = _env(tmp_path, pg_url, emu.base_urls["coingecko"], shared)
            procs = [await _start(env, tmp_path), await _start(env, tmp_path)]
            await (_finish if shared == "on" else _until_violation)(procs, emu)
            stats = await emu.stats()
        async with engine.connect() as conn:
            ok = text("SELECT count(*) FROM coin_results WHERE status = 'ok'")
            stored = (await conn.execute(ok)).scalar_one()
    finally:
        await engine.dispose()
    return stats, int(stored)


async def test_two_processes_sharing_one_key_break_no_limit_with_shared_limits(
    pg_url: str, tmp_path: Path
) -> None:
    stats, stored = await _two_processes("on", pg_url, tmp_path)
    assert stats["violations"]["total"] == 0, stats["violations"]["recent"]
    assert stored == 2 * COINS
    assert sum(stats["requests"]["coingecko"]["/coins/markets"].values()) == 2 * COINS // 25


async def test_two_processes_sharing_one_key_break_the_limits_without(
    pg_url: str, tmp_path: Path
) -> None:
    stats, _ = await _two_processes("off", pg_url, tmp_path)
    assert stats["violations"]["total"] > 0


@pytest.mark.parametrize("command", [["collect"], ["run", "--no-http"]])
def test_shared_limits_on_sqlite_fails_at_start_up_with_one_line(
    command: list[str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "SHARED_LIMITS": "on",
        "COINHARVEST_DB": str(tmp_path / "c.db"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "coinharvest", *command],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and "SHARED_LIMITS=on needs DATABASE_URL=postgresql+asyncpg://" in lines[0]
    )
    assert not (tmp_path / "c.db").exists()  # nothing was created before failing
