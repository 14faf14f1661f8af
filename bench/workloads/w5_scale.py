"""W5, scale: 10,000 coins over four sources, stored in SQLite, emulator in its own process.

Every coin is on CoinGecko (250 ids per request, CoinGecko's limits scaled) and on one of
3xpl, Blockchair or Nano (per coin, batch size 1: 10 in flight, no spacing, latency 0.2 s
scaled), so a run is 40 + 10,000 jobs. The emulator runs as ``python -m
coinharvest.emulator`` in a subprocess and the coinharvest side in another
(`main_child`), so the child's CPU time and peak RSS are coinharvest's
alone. The child also runs the same coins through the engine with instant in-memory
sources (no HTTP, no store, no limits): that CPU time per job is the scheduler's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.bound import SourceLoad, run_bound
from bench.context import Context, Outcome
from bench.harness import emulator_limits, http_sources, make_engine, scaled
from bench.report import Row
from coinharvest.cli.main import GC_YOUNG_THRESHOLD
from coinharvest.emulator import base_urls_for
from coinharvest.engine import Engine
from coinharvest.models import Coin, SourceLimits
from coinharvest.sources.base import close_sources
from coinharvest.sources.simulated import SimulatedSource

__all__ = ["DEFAULT_SCALE", "TITLE", "run"]

TITLE = "W5 scale: 10,000 coins, four sources, SQLite store"
DEFAULT_SCALE = 0.1
CHAIN_SOURCES = ("3xpl", "blockchair", "nano")
LIMITS = {
    "coingecko": SourceLimits(3, 2.0, 30, 60.0),
    **{name: SourceLimits(max_concurrency=10) for name in CHAIN_SOURCES},
}
LATENCY_S = {"coingecko": 0.5, **dict.fromkeys(CHAIN_SOURCES, 0.2)}
BATCH = {"coingecko": 250, **dict.fromkeys(CHAIN_SOURCES, 1)}
GLOBAL_CAP = 32
_CHILD = "from bench.workloads.w5_scale import main_child; main_child()"


def coins(n: int) -> list[Coin]:
    """`n` coins: CoinGecko plus one chain source each, round robin."""
    out = []
    for i in range(1, n + 1):
        sid = f"synth-{i:05d}"
        chain = CHAIN_SOURCES[i % len(CHAIN_SOURCES)]
        ids = {"coingecko": sid, chain: "nano" if chain == "nano" else sid}
        out.append(Coin(f"SYN{i}", f"Synth {i:05d}", ids, (("coingecko",), (chain,))))
    return out


def _limits(scale: float) -> dict[str, SourceLimits]:
    return {name: scaled(lim, scale) for name, lim in LIMITS.items()}


# ----------------------------------------------------------------------- child process


async def _store_run(root: str, n: int, scale: float, db: Path) -> dict[str, Any]:
    """The real run: HTTP sources, SQLite store; CPU, RSS and time of this process."""
    from coinharvest.storage import Store

    cs = coins(n)
    latency = {k: v * scale for k, v in LATENCY_S.items()}
    sources = http_sources(LIMITS, base_urls_for(root))
    async with await Store.from_url(f"sqlite+aiosqlite:///{db}") as store:
        engine = make_engine(
            sources, _limits(scale), batch_sizes=BATCH, max_concurrency=GLOBAL_CAP, sink=store
        )
        cpu0, t0 = time.process_time(), time.perf_counter()
        summary = await engine.run(cs, trigger="bench")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        await close_sources(engine.sources.values())
    jobs = len(summary.jobs)
    return {
        "duration_s": summary.duration_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "jobs": jobs,
        "requests": summary.requests,
        "rate_limited": summary.rate_limited,
        "coins_ok": summary.coins_ok,
        "store_errors": summary.store_errors,
        "cpu_us_per_job": 1e6 * cpu / max(1, jobs),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "latency_s": latency,
    }


async def _scheduler_run(n: int, batch: dict[str, int]) -> dict[str, Any]:
    """The same coins through the engine with instant sources: the scheduler's own CPU."""
    sources = {
        name: SimulatedSource(name, batch_size=batch[name], limits=SourceLimits(1_000_000))
        for name in LIMITS
    }
    engine = Engine(sources, max_concurrency=GLOBAL_CAP)
    todo = coins(n)  # built before the clock starts: not the scheduler's cost
    cpu0 = time.process_time()
    summary = await engine.run(todo, trigger="bench")
    cpu = time.process_time() - cpu0
    jobs = len(summary.jobs)
    return {"jobs": jobs, "cpu_s": cpu, "cpu_us_per_job": 1e6 * cpu / max(1, jobs)}


async def _child(root: str, n: int, scale: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result = {"store_run": await _store_run(root, n, scale, Path(tmp) / "bench.db")}
    result["scheduler_batched"] = await _scheduler_run(n, BATCH)
    result["scheduler_unbatched"] = await _scheduler_run(n, dict.fromkeys(LIMITS, 1))
    return result


# ----------------------------------------------------------------------- parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _emulator_config(scale: float, n: int) -> dict[str, Any]:
    limits = _limits(scale)
    return {
        "universe": n,
        "upstreams": {
            name: {
                "limits": emulator_limits(limits[name]),
                "latency": {"fixed_ms": LATENCY_S[name] * scale * 1000.0},
            }
            for name in LIMITS
        },
    }


async def _wait_ready(root: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{root}/__emulator__/stats")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"emulator at {root} did not start within {timeout_s:g} s")


async def run(ctx: Context) -> Outcome:
    """Start the emulator process, run the child, collect both sides' figures."""
    scale = DEFAULT_SCALE * ctx.scale
    n = 300 if ctx.smoke else 10_000
    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "emulator.json"
        cfg.write_text(json.dumps(_emulator_config(scale, n)), encoding="utf-8")
        emu = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coinharvest.emulator",
                "--port",
                str(port),
                "--config",
                str(cfg),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await _wait_ready(root)
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _CHILD,
                "--child",
                root,
                str(n),
                str(scale),
                stdout=asyncio.subprocess.PIPE,
            )
            stdout, _ = await asyncio.wait_for(child.communicate(), timeout=600)
            async with httpx.AsyncClient() as client:
                stats = (await client.get(f"{root}/__emulator__/stats")).json()
        finally:
            emu.terminate()
            try:
                emu.wait(timeout=10)
            except subprocess.TimeoutExpired:
                emu.kill()
    return _outcome(json.loads(stdout.decode().strip().splitlines()[-1]), stats, scale, n)


def _outcome(result: dict[str, Any], stats: dict[str, Any], scale: float, n: int) -> Outcome:
    store = result["store_run"]
    limits = _limits(scale)
    loads = []
    for name in LIMITS:
        served = (
            n
            if name == "coingecko"
            else sum(1 for i in range(1, n + 1) if CHAIN_SOURCES[i % len(CHAIN_SOURCES)] == name)
        )
        requests = math.ceil(served / BATCH[name])
        loads.append(SourceLoad(name, requests, limits[name], LATENCY_S[name] * scale))
    bound = run_bound(loads, GLOBAL_CAP)
    extra = {
        "cpu_s": round(store["cpu_s"], 3),
        "cpu_us_per_job_total": round(store["cpu_us_per_job"], 1),
        "scheduler_us_per_job_batched": round(result["scheduler_batched"]["cpu_us_per_job"], 1),
        "scheduler_us_per_job_unbatched": round(result["scheduler_unbatched"]["cpu_us_per_job"], 1),
        "scheduler_jobs_unbatched": result["scheduler_unbatched"]["jobs"],
        "peak_rss_mb": round(store["peak_rss_mb"], 1),
        "jobs": store["jobs"],
        "coins_ok": store["coins_ok"],
        "store_errors": store["store_errors"],
        "violation_kinds": stats["violations"]["by_kind"],
    }
    row = Row(
        "W5",
        f"{n:,} coins",
        "coinharvest",
        store["duration_s"],
        bound,
        store["requests"],
        store["rate_limited"],
        stats["violations"]["total"],
        extra=extra,
    )
    notes = [
        f"time scale {scale:g}; global cap {GLOBAL_CAP}; sink: SQLite Store "
        f"(coinharvest.storage); emulator in its own process.",
        f"coinharvest process: {store['cpu_s']:.2f} s CPU for {store['jobs']:,} jobs = "
        f"{store['cpu_us_per_job']:.0f} µs/job all-in (HTTP client, JSON, store); peak RSS "
        f"{store['peak_rss_mb']:.0f} MB.",
        f"scheduler alone (instant in-memory sources, memory sink): "
        f"{result['scheduler_batched']['cpu_us_per_job']:.0f} µs/job over "
        f"{result['scheduler_batched']['jobs']:,} jobs; unbatched "
        f"{result['scheduler_unbatched']['cpu_us_per_job']:.0f} µs/job over "
        f"{result['scheduler_unbatched']['jobs']:,} jobs.",
    ]
    return Outcome(rows=[row], notes=notes, meta={"scale": scale, "child": result})


def main_child() -> None:
    """The child process: run, then print one JSON line of figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=3, metavar=("ROOT", "N", "SCALE"), required=True)
    args = parser.parse_args()
    root, n, scale = args.child
    _, older, oldest = gc.get_threshold()  # as the CLI's entry point sets it
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    print(json.dumps(asyncio.run(_child(root, int(n), float(scale)))), flush=True)
