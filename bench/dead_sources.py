"""A run with every on-chain source dead, before and after the circuit breaker (issue 12).

``coinharvest collect`` of the 11 default coins, as users run it (its own process, the
default SQLite store in a temporary directory), with CoinGecko pointed at the emulator
(``coinharvest emulator --port P`` in a third process) and the on-chain sources (3xpl,
Blockchair with a key, NearBlocks, Nano) pointed at loopback ports nobody listens on
(connection refused). Measured per run: the wall time of the command, the run's own
duration, requests and retries per source (from the run's job timeline in the database),
and how long the run went on after the last request to a live source ended (the issue's
target: within 10 s).

A second scenario times a DNS failure for one source: Nano at ``http://nonexistent.invalid``,
every other source on the emulator.

Both scenarios run twice on the same machine, one after the other: with the code under
test (this checkout's ``src``) and with the code before the hardening (commit ``0080b12``,
checked out with ``git worktree add /tmp/before 0080b12``; its CLI runs from
``PYTHONPATH=/tmp/before/src``, no install).

Run: ``python bench/dead_sources.py [--before /tmp/before/src] [--repeat N] [--json FILE]``
(about a minute: the old code's dead-source run alone takes ~40 s).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AFTER_SRC = ROOT / "src"
BEFORE_COMMIT = "0080b12"
ON_CHAIN = {"3xpl": "THREEXPL", "blockchair": "BLOCKCHAIR", "nearblocks": "NEARBLOCKS"}
ON_CHAIN |= {"nano": "NANO"}
LIVE_PATHS = {
    "coingecko": "/coingecko/api/v3",
    "3xpl": "/3xpl",
    "blockchair": "/blockchair",
    "nearblocks": "/nearblocks",
    "nano": "/nano",
}
DNS_FAILURE = "http://nonexistent.invalid"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """The environment without any coinharvest variable a developer may have set."""
    prefixes = ("COINGECKO_", "THREEXPL_", "BLOCKCHAIR_", "NEARBLOCKS_", "NANO_", "MAX_")
    drop = {"COINS_FILE", "COINHARVEST_DB", "DATABASE_URL", "DEBUG", "PYTHONPATH"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(prefixes)}


def _start_emulator(port: int) -> subprocess.Popen[bytes]:
    env = _clean_env() | {"PYTHONPATH": str(AFTER_SRC)}
    command = [sys.executable, "-m", "coinharvest", "emulator", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stats = f"http://127.0.0.1:{port}/__emulator__/stats"
    for _ in range(200):
        try:
            with urllib.request.urlopen(stats, timeout=2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the emulator did not start")


def _base_urls(scenario: str, emulator: str) -> dict[str, str]:
    urls = {name: emulator + path for name, path in LIVE_PATHS.items()}
    if scenario == "dead":
        urls |= {name: f"http://127.0.0.1:{_free_port()}" for name in ON_CHAIN}
    else:  # "dns"
        urls["nano"] = DNS_FAILURE
    return urls


def _collect(src: Path, scenario: str, emulator: str, folder: Path) -> dict[str, Any]:
    """One ``coinharvest collect`` with the code in `src`; its figures."""
    db = folder / f"{src.parent.name}-{scenario}-{time.monotonic_ns()}.db"
    env = _clean_env() | {
        "PYTHONPATH": str(src),
        "COINHARVEST_DB": str(db),
        "BLOCKCHAIR_API_KEY": "bench-key",
        "COLUMNS": "120",
    }
    for name, url in _base_urls(scenario, emulator).items():
        env[f"{ON_CHAIN.get(name, 'COINGECKO')}_BASE_URL"] = url
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "coinharvest", "collect"],
        env=env, cwd=folder, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if "Traceback" in done.stderr:
        print(done.stderr[-3000:], file=sys.stderr)
    figures = _from_database(db, live=_live(scenario))
    figures.update(exit=done.returncode, wall_s=round(wall, 2))
    return figures


def _live(scenario: str) -> set[str]:
    return {"coingecko"} if scenario == "dead" else {"coingecko", *ON_CHAIN} - {"nano"}


def _from_database(db: Path, live: set[str]) -> dict[str, Any]:
    """The run's status, duration and per-source requests, from its own tables."""
    with sqlite3.connect(db) as conn:
        run = conn.execute(
            "SELECT run_id, status, duration_s, requests, retries, coins_ok, coins_failed, "
            "coins_deferred FROM runs ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        jobs = conn.execute(
            "SELECT source, started_s, ended_s, status FROM job_events WHERE run_id = ?",
            (run[0],),
        ).fetchall()
    per_source: dict[str, dict[str, int]] = {}
    for source, started_s, _, status in jobs:
        counts = per_source.setdefault(source, {"requests": 0, "retried": 0})
        counts["requests"] += started_s is not None
        counts["retried"] += status in ("retried", "rate_limited")
    live_end = max((ended for src, _, ended, _ in jobs if src in live and ended), default=0.0)
    return {
        "run_id": run[0],
        "status": run[1],
        "duration_s": round(run[2], 2),
        "requests": run[3],
        "retries": run[4],
        "coins": {"ok": run[5], "failed": run[6], "deferred": run[7]},
        "per_source": dict(sorted(per_source.items())),
        "live_jobs_ended_s": round(live_end, 2),
        "after_live_s": round(run[2] - live_end, 2),
    }


def _ensure_before(before: Path) -> None:
    if (before / "coinharvest").is_dir():
        return
    worktree = before.parent
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), BEFORE_COMMIT],
        check=True,
    )


def run(before: Path, repeat: int) -> dict[str, Any]:
    _ensure_before(before)
    port = _free_port()
    emulator = f"http://127.0.0.1:{port}"
    proc = _start_emulator(port)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for scenario in ("dead", "dns"):
                for label, src in (("before", before), ("after", AFTER_SRC)):
                    for _ in range(repeat):
                        figures = _collect(src, scenario, emulator, Path(tmp))
                        results.setdefault(scenario, {}).setdefault(label, []).append(figures)
                        print(json.dumps({"scenario": scenario, "code": label, **figures}))
    finally:
        proc.terminate()
        proc.wait()
    return {"before": BEFORE_COMMIT, "repeat": repeat, "results": results}


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(float(r[key]) for r in rows), 2)


def table(summary: dict[str, Any]) -> str:
    """The side-by-side table (medians over the repeats)."""
    lines = [
        "| scenario | code | wall s | run s | requests | retries | ended after live s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for scenario, by_code in summary["results"].items():
        for code, rows in by_code.items():
            cells = [_median(rows, k) for k in ("wall_s", "duration_s", "requests", "retries")]
            cells.append(_median(rows, "after_live_s"))
            lines.append(f"| {scenario} | {code} | " + " | ".join(f"{c:g}" for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, default=Path("/tmp/before/src"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, help="save every run's figures here")
    args = parser.parse_args()
    summary = run(args.before, args.repeat)
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
