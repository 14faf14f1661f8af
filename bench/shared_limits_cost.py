"""What ``SHARED_LIMITS=on`` costs: admission latency of the real shared limiter, and the same
`coinharvest collect` with the limits shared or not, side by side in one run.

Starts a throwaway PostgreSQL 15 (fsync on, as the tests' server) and the emulator in its own
process (CoinGecko with no limits and ``--latency-ms`` of service time, so that no limit
binds and only the limiter's own cost shows), then:

1. **Admission latency**: `coinharvest.engine.shared_limits.SharedLimits` as the engine uses
   it, for ``--admissions`` requests of one source with a 1 µs spacing (so the wire gate is
   asked, as for any source with a spacing) and a cap above the askers: ``admit`` (one
   ``shared_limit_acquire`` call), ``on_wire`` (one ``shared_limit_send``) and ``release``
   (one ``DELETE``), each timed; one asker, then ``--askers`` asyncio tasks at once (one
   process's lanes; an asker never waits on a limit).
2. **Cost per request**: ``coinharvest collect`` of ``--coins`` coins at one CoinGecko request
   each (batch size 1), ``--runs`` times with ``SHARED_LIMITS=off`` and ``on`` alternately,
   on the same PostgreSQL: the run's own duration (from the ``runs`` table) and the process's
   CPU time, per request.

``python bench/shared_limits_cost.py`` (about a minute); ``--json FILE`` saves the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sources.outofprocess import emulator_process


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": round(1000 * statistics.median(ordered), 3), "p90": at(0.9), "p99": at(0.99)}


async def admission_latency(url: str, admissions: int, askers: int) -> dict[str, Any]:
    """Time admit / on_wire / release of the real client, `askers` at once."""
    from coinharvest.engine.limiter import SourceLimiter
    from coinharvest.engine.shared_limits import SharedLimits
    from coinharvest.models import SourceLimits
    from coinharvest.storage import open_database

    db = await open_database(url, pool_size=max(5, askers))
    shared = SharedLimits(db, {"bench": ""}, lease_s=60)
    limiter = SourceLimiter(
        "bench",
        SourceLimits(max_concurrency=10_000, min_interval_s=0.000_001),
        clock=time.monotonic,
    )
    timings: dict[str, list[float]] = {"admit": [], "on_wire": [], "release": []}

    async def asker(n: int) -> None:
        for _ in range(n):
            lease = uuid.uuid4()
            t0 = time.perf_counter()
            assert await shared.admit(limiter, lease, time.monotonic) is None
            t1 = time.perf_counter()
            await shared.on_wire(limiter, lease)
            t2 = time.perf_counter()
            await shared.release("bench", lease)
            t3 = time.perf_counter()
            for name, took in (("admit", t1 - t0), ("on_wire", t2 - t1), ("release", t3 - t2)):
                timings[name].append(took)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(asker(admissions // askers) for _ in range(askers)))
        elapsed = time.perf_counter() - started
    finally:
        await db.dispose()
    figures: dict[str, Any] = {"askers": askers, "admissions": len(timings["admit"])}
    figures |= {f"{name}_ms": _ms(values) for name, values in timings.items()}
    figures["requests_per_s"] = round(len(timings["admit"]) / elapsed, 1)
    return figures


def _coins_file(folder: Path, count: int) -> Path:
    from coinharvest.emulator.catalog import synthetic_id

    path = folder / "coins.toml"
    path.write_text(
        "".join(
            f'[[coin]]\nsymbol = "S{i:04d}"\nname = "Synth {i}"\n'
            f'ids = {{ coingecko = "{synthetic_id(i)}" }}\n\n'
            for i in range(1, count + 1)
        )
    )
    return path


def _collect(env: dict[str, str], folder: Path) -> tuple[float, float]:
    """One `coinharvest collect`: (wall seconds, CPU seconds of the process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "coinharvest", "collect"],
        env=env, cwd=folder, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


async def _last_run_s(url: str) -> float:
    from sqlalchemy import text

    from coinharvest.storage import open_database

    db = await open_database(url)
    try:
        async with db.connect() as conn:
            sql = text("SELECT duration_s, requests FROM runs ORDER BY started_at DESC LIMIT 1")
            duration, _ = (await conn.execute(sql)).one()
    finally:
        await db.dispose()
    return float(duration)


async def collect_cost(url: str, coins: int, runs: int, latency_ms: float) -> dict[str, Any]:
    """The same collect with SHARED_LIMITS off and on, alternately; per-request figures."""
    config = {"universe": coins, "upstreams": {"coingecko": {"latency": {"fixed_ms": latency_ms}}}}
    out: dict[str, dict[str, list[float]]] = {m: {"run_s": [], "cpu_s": []} for m in ("off", "on")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        async with emulator_process(config, folder) as emu:
            env = os.environ | {
                "DATABASE_URL": url, "COINS_FILE": str(_coins_file(folder, coins)),
                "COINGECKO_BASE_URL": emu.base_urls["coingecko"], "COINGECKO_BATCH_SIZE": "1",
                "COINGECKO_MIN_INTERVAL_MS": "0", "COINGECKO_RATE_LIMIT_PER_MINUTE": "100000",
                "MAX_COINGECKO_CONCURRENCY": "5", "MAX_COLLECTION_CONCURRENCY": "5",
                "LOG_LEVEL": "WARNING", "DEBUG": "",
            }  # fmt: skip
            for _ in range(runs):
                for mode in ("off", "on"):
                    _, cpu = _collect(env | {"SHARED_LIMITS": mode}, folder)
                    out[mode]["run_s"].append(await _last_run_s(url))
                    out[mode]["cpu_s"].append(cpu)
    figures: dict[str, Any] = {"coins": coins, "requests_per_run": coins, "runs": runs}
    for mode, got in out.items():
        run_s, cpu_s = statistics.median(got["run_s"]), statistics.median(got["cpu_s"])
        figures[mode] = {
            "run_s_median": round(run_s, 3),
            "run_ms_per_request": round(1000 * run_s / coins, 3),
            "process_cpu_s_median": round(cpu_s, 3),
            "cpu_ms_per_request": round(1000 * cpu_s / coins, 3),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admissions", type=int, default=2000)
    parser.add_argument("--askers", type=int, default=5)
    parser.add_argument("--coins", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--json", type=Path, help="save the figures here")
    args = parser.parse_args()
    from storage.pgserver import PgServer

    pg = PgServer(fsync=True).start()
    try:
        from coinharvest.storage import open_database

        async def migrate() -> None:
            await (await open_database(pg.url)).dispose()

        asyncio.run(migrate())
        figures = {
            "admission": [
                asyncio.run(admission_latency(pg.url, args.admissions, 1)),
                asyncio.run(admission_latency(pg.url, args.admissions, args.askers)),
            ],
            "collect": asyncio.run(collect_cost(pg.url, args.coins, args.runs, args.latency_ms)),
        }
    finally:
        pg.stop()
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
