"""SIGKILL in the middle of a run: completed coins survive whole, none is stored half, and
the run reads ``interrupted`` once a store opens the database again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from coinharvest.storage import Store, queries

from .storekit import orphan_observations, stored_coins

HELPER = Path(__file__).with_name("killable_run.py")
N = 120


async def test_sigkill_mid_run_keeps_whole_coins_and_marks_the_run(tmp_path: Path) -> None:
    db_file = tmp_path / "killed.db"
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(db_file), str(N)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    announced: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(announced) < 25 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("stored "):
                announced.append(line.split()[1])
        assert len(announced) >= 25, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        rest = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    announced += [ln.split()[1] for ln in rest.splitlines() if ln.startswith("stored ")]
    assert "finished" not in rest, "the kill landed after the run: make the run longer"
    assert proc.returncode == -signal.SIGKILL

    async with await Store.from_url(f"sqlite+aiosqlite:///{db_file}") as store:
        coins = {s: (c, n) for s, (c, n, _) in (await stored_coins(store.engine)).items()}
        orphans = await orphan_observations(store.engine)
        runs = await queries.list_runs(store.engine)
    assert set(announced) <= set(coins), "a coin reported stored was lost"
    assert len(coins) < N, "the kill landed after every coin was stored"
    # Whole, never half: every coin has all its observations (8 fetched + any derived ones).
    assert all(count == n >= 8 for count, n in coins.values()), coins
    assert orphans == 0
    assert len(runs) == 1 and runs[0].status == "interrupted"
    assert runs[0].coins_ok == len(coins)
    # The timeline was written with the coins: the interrupted run shows what it did.
    async with await Store.from_url(f"sqlite+aiosqlite:///{db_file}") as store:
        detail = await queries.run_detail(store.engine, runs[0].run_id)
    assert detail is not None
    done = {sym for job in detail.jobs if job.ended_s is not None for sym in job.symbols.split(",")}
    assert set(coins) <= done  # every stored coin's request is in the timeline
    assert runs[0].requests == sum(1 for job in detail.jobs if job.started_s is not None)
    assert runs[0].requests >= len(coins)
