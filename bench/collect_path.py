"""W2 and W5 as users run them: ``coinharvest collect`` in its own process, a real store.

``python bench/collect_path.py --workload w5 --store sqlite --runs 3``
``python bench/collect_path.py --workload w2 --coins 10000 --store postgres``

Three processes: the emulator (``python -m coinharvest.emulator`` with the workload's limits
and latencies, scale 0.1 as in ``python -m bench w5``), this script, and the installed CLI
(``python -m coinharvest collect``) with a coins file, the limits in its environment and the
default SQLite file (``--store sqlite``) or a throwaway PostgreSQL 15 (``--store postgres``,
fsync on, started like the tests' server). Each run reports:

- ``run_s``: the run's own duration as the CLI recorded it in ``runs`` (no process start);
  ``x_bound``: that over the bound (`bench.bound.run_bound` for the same loads);
- ``wall_s``: the CLI process from exec to exit (start-up, migrations, the run, shutdown);
- ``cpu_s`` / ``cpu_us_per_job``: the CLI process's user + system CPU (``wait4``), per job
  (a request); ``rss_mb``: its peak RSS;
- ``violations`` / ``rate_limited``: what the emulator counted and answered 429.

The scaled window cannot be written as ``<SRC>_RATE_LIMIT_PER_MINUTE``: CoinGecko gets its
scaled spacing (200 ms) and in-flight cap (3), and a per-minute rate (300) that, like the
scaled 30 per 6 s, never binds before the spacing does. Chain sources: 10 in flight, no
spacing, no rate (100,000 a minute, the most the setting allows), batch size 1, as in W5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` and the tests' kit importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench.adaptive_kit import EmulatorProcess, clean_env
from bench.bound import SourceLoad, run_bound
from bench.workloads.w5_scale import BATCH, CHAIN_SOURCES, GLOBAL_CAP, LATENCY_S, _limits

SCALE = 0.1
ENV_NAME = {
    "coingecko": "COINGECKO",
    "3xpl": "THREEXPL",
    "blockchair": "BLOCKCHAIR",
    "nano": "NANO",
}


def _sources(workload: str) -> tuple[str, ...]:
    return ("coingecko",) if workload == "w2" else ("coingecko", *CHAIN_SOURCES)


def _coins_toml(workload: str, n: int) -> str:
    parts = []
    for i in range(1, n + 1):
        sid = f"synth-{i:05d}"
        ids = f'coingecko = "{sid}"'
        if workload == "w5":
            chain = CHAIN_SOURCES[i % len(CHAIN_SOURCES)]
            ids += f', {chain} = "{"nano" if chain == "nano" else sid}"'
        parts.append(f'[[coin]]\nsymbol = "SYN{i}"\nname = "Synth {i:05d}"\nids = {{ {ids} }}\n')
    return "\n".join(parts)


def _emulator_config(workload: str, n: int) -> dict[str, Any]:
    limits = _limits(SCALE)
    upstreams = {}
    for name in _sources(workload):
        lim = limits[name]
        upstreams[name] = {
            "limits": {
                "max_in_flight": lim.max_concurrency,
                "min_interval_ms": lim.min_interval_s * 1000.0 or None,
                "rate": lim.rate_per_window,
                "window_s": lim.window_s,
                "retry_after": "always",
            },
            "latency": {"fixed_ms": LATENCY_S[name] * SCALE * 1000.0},
        }
    return {"universe": n, "upstreams": upstreams}


def _cli_env(
    workload: str, urls: dict[str, str], folder: Path, db_url: str | None
) -> dict[str, str]:
    env = clean_env()
    env |= {
        "COINS_FILE": str(folder / "coins.toml"),
        "COINHARVEST_DB": str(folder / "coinharvest.db"),
        "MAX_COLLECTION_CONCURRENCY": str(GLOBAL_CAP),
        "BLOCKCHAIR_API_KEY": "bench",
    }
    if db_url is not None:
        env["DATABASE_URL"] = db_url
    env["ADAPTIVE_LIMITS"] = os.environ.get("COINHARVEST_BENCH_ADAPTIVE", "true")
    env["LOG_LEVEL"] = os.environ.get("COINHARVEST_BENCH_LOG_LEVEL", "info")
    limits = _limits(SCALE)
    for name in _sources(workload):
        prefix, lim = ENV_NAME[name], limits[name]
        env[f"{prefix}_BASE_URL"] = urls[name]
        env[f"MAX_{prefix}_CONCURRENCY"] = str(lim.max_concurrency)
        env[f"{prefix}_MIN_INTERVAL_MS"] = f"{lim.min_interval_s * 1000.0:g}"
        env[f"{prefix}_RATE_LIMIT_PER_MINUTE"] = "300" if name == "coingecko" else "100000"
        env[f"{prefix}_BATCH_SIZE"] = str(BATCH[name])
    return env


def _bound(workload: str, n: int) -> float:
    limits, loads = _limits(SCALE), []
    for name in _sources(workload):
        served = n if name == "coingecko" else sum(
            1 for i in range(1, n + 1) if CHAIN_SOURCES[i % len(CHAIN_SOURCES)] == name
        )  # fmt: skip
        requests = math.ceil(served / BATCH[name])
        loads.append(SourceLoad(name, requests, limits[name], LATENCY_S[name] * SCALE))
    return run_bound(loads, GLOBAL_CAP)


async def _last_run(folder: Path, db_url: str | None) -> dict[str, Any]:
    query = "SELECT duration_s, requests, coins_ok FROM runs ORDER BY started_at DESC LIMIT 1"
    if db_url is None:
        import sqlite3

        with sqlite3.connect(folder / "coinharvest.db") as conn:
            row = conn.execute(query).fetchone()
    else:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
        try:
            row = tuple(await conn.fetchrow(query))
        finally:
            await conn.close()
    return {"run_s": float(row[0]), "requests": int(row[1]), "coins_ok": int(row[2])}


def _collect(env: dict[str, str], folder: Path) -> dict[str, Any]:
    log = folder / "collect.log"  # a file, not a pipe: a full pipe would stall the CLI
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coinharvest", "collect"], env=env, cwd=folder,
            stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"collect failed (exit {os.waitstatus_to_exitcode(status)}): {tail}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
    }


async def run(workload: str, n: int, store: str, runs: int) -> list[dict[str, Any]]:
    """`runs` runs of `collect`; one dict of figures per run."""
    pg = None
    if store == "postgres":
        from storage.pgserver import PgServer

        pg = PgServer(fsync=True).start()
    bound, results = _bound(workload, n), []
    try:
        async with EmulatorProcess(_emulator_config(workload, n)) as emu:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                (folder / "coins.toml").write_text(_coins_toml(workload, n), encoding="utf-8")
                env = _cli_env(workload, emu.urls, folder, pg.url if pg else None)
                for i in range(runs):
                    await emu.reset()
                    figures = await asyncio.to_thread(_collect, env, folder)
                    figures |= await _last_run(folder, pg.url if pg else None)
                    stats = (await emu.client.get("/__emulator__/stats")).json()
                    figures |= {
                        "run": i + 1,
                        "bound_s": round(bound, 3),
                        "x_bound": round(figures["run_s"] / bound, 2),
                        "cpu_us_per_job": round(1e6 * figures["cpu_s"] / figures["requests"]),
                        "violations": stats["violations"]["total"],
                        "rate_limited": stats["rate_limited"]["total"],
                    }
                    print(json.dumps({k: _round(v) for k, v in figures.items()}), flush=True)
                    results.append(figures)
    finally:
        if pg is not None:
            pg.stop()
    return results


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("run_s", "x_bound", "wall_s", "cpu_us_per_job", "rss_mb")
    return {f"median_{k}": _round(statistics.median(r[k] for r in results)) for k in keys} | {
        "violations": sum(r["violations"] for r in results),
        "coins_ok": [r["coins_ok"] for r in results],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("w2", "w5"), default="w5")
    parser.add_argument("--coins", type=int, default=10_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--log-level", default="info", help="LOG_LEVEL of the CLI (default info: 2 lines a coin)"
    )
    parser.add_argument(
        "--no-adaptive", action="store_true", help="ADAPTIVE_LIMITS=false (default: on)"
    )
    args = parser.parse_args()
    if args.no_adaptive:
        os.environ["COINHARVEST_BENCH_ADAPTIVE"] = "false"
    os.environ["COINHARVEST_BENCH_LOG_LEVEL"] = args.log_level
    done = asyncio.run(run(args.workload, args.coins, args.store, args.runs))
    print(json.dumps(_summary(done)))
