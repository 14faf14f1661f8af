"""Store write throughput: one run of N coins x M metrics through `Store`, as the engine does.

    python bench/store_write.py                       # 10,000 coins x 8 metrics, both backends
    python bench/store_write.py --backend sqlite --coins 2000
    python bench/store_write.py --w5 --repeats 5     # CPU per coin as W5 stores its coins

Each coin is one `coin_completed` call (one transaction: result row + M observations), up to
`--concurrency` in progress at once like concurrent completions in the engine; then
`run_finished` writes the run's totals and its job timeline (one job per coin). SQLite is a
fresh file in a temp dir (WAL, synchronous=NORMAL, the store's defaults). PostgreSQL is a
throwaway server started here (initdb + pg_ctl, like the test fixture) with fsync ON, the
server's defaults otherwise, and the store's pool of 5 connections.

``--w5`` feeds the store as the engine does in W5 (``engine/run.py`` ``_store``): every coin
has 8 CoinGecko metrics and 2 of one chain source; the CoinGecko jobs (250 coins each) are
recorded when the run starts, each coin's chain job just before its `coin_completed`
(`jobs_recorded` then `coin_completed`, from one task per coin). Coins complete at
``--rate`` per second (0: all at once, `--concurrency` in progress), so group commit forms
batches from the backlog as in a run. It reports the process CPU time per coin
(``time.process_time``: the event loop and aiosqlite's thread) and the wall time per coin
of the coin phase, the median of ``--repeats`` runs on fresh databases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the storage tests' kit

from storage.pgserver import PgServer

from coinharvest.models import (
    CoinResult,
    CoinStatus,
    JobRecord,
    JobStatus,
    Observation,
    RunStatus,
    RunSummary,
)
from coinharvest.storage import Store

METRICS = (
    "price_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "price_change_24h_pct",
    "circulating_supply",
    "tx_count_24h",
    "block_height",
    "mempool_tx",
    "annual_tx_count",
    "annual_tx_value_usd",
    "avg_tx_value_usd",
)


def make_results(n: int, metrics: int) -> list[CoinResult]:
    now = datetime.now(UTC)
    return [
        CoinResult(
            f"C{i:05d}",
            f"Coin {i}",
            CoinStatus.OK,
            now,
            0.2,
            1,
            ("coingecko",),
            [
                Observation(
                    f"C{i:05d}",
                    "coingecko",
                    METRICS[m % len(METRICS)] + ("" if m < len(METRICS) else f"_{m}"),
                    float(i + m),
                    now,
                )
                for m in range(metrics)
            ],
        )
        for i in range(n)
    ]


async def bench(url: str, n: int, metrics: int, concurrency: int) -> dict[str, float]:
    results = make_results(n, metrics)
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    async with await Store.from_url(url) as store:
        t0 = time.perf_counter()
        await store.run_started("bench", "manual", datetime.now(UTC), [])

        async def one(result: CoinResult) -> None:
            async with gate:
                s = time.perf_counter()
                await store.coin_completed("bench", result)
                latencies.append(time.perf_counter() - s)

        await asyncio.gather(*(one(r) for r in results))
        t_coins = time.perf_counter() - t0
        jobs = [
            JobRecord(i, "coingecko", (r.symbol,), 1, 0.0, 0.1, 0.2, JobStatus.OK)
            for i, r in enumerate(results)
        ]
        summary = RunSummary(
            "bench",
            "manual",
            RunStatus.COMPLETED,
            datetime.now(UTC),
            t_coins,
            n,
            n,
            0,
            0,
            n,
            0,
            0,
            concurrency,
            jobs=jobs,
        )
        s = time.perf_counter()
        await store.run_finished(summary)
        t_finish = time.perf_counter() - s
        total = time.perf_counter() - t0
    latencies.sort()
    return {
        "coins": n,
        "metrics": metrics,
        "concurrency": concurrency,
        "total_s": round(total, 2),
        "coins_s": round(t_coins, 2),
        "finish_s": round(t_finish, 2),
        "coins_per_s": round(n / t_coins),
        "observations_per_s": round(n * metrics / t_coins),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


W5_GECKO = METRICS[:8]
W5_CHAIN = ("tx_count_24h", "block_height")
W5_CHAINS = ("3xpl", "blockchair", "nano")
W5_BATCH = 250


def w5_coins(n: int) -> tuple[list[CoinResult], list[JobRecord], list[JobRecord]]:
    """W5's coins (8 CoinGecko + 2 chain metrics), its CoinGecko jobs, one chain job each."""
    now = datetime.now(UTC)
    results, gecko, chain = [], [], []
    for i in range(n):
        sym, source = f"C{i:05d}", W5_CHAINS[i % len(W5_CHAINS)]
        obs = [Observation(sym, "coingecko", m, float(i + k), now) for k, m in enumerate(W5_GECKO)]
        obs += [Observation(sym, source, m, float(i), now) for m in W5_CHAIN]
        results.append(
            CoinResult(sym, f"Coin {i}", CoinStatus.OK, now, 0.7, 2, ("coingecko", source), obs)
        )
        chain.append(JobRecord(n + i, source, (sym,), 1, 0.0, 0.5, 0.7, JobStatus.OK))
    for j in range(0, n, W5_BATCH):
        symbols = tuple(r.symbol for r in results[j : j + W5_BATCH])
        gecko.append(JobRecord(j // W5_BATCH, "coingecko", symbols, 1, 0.0, 0.0, 0.5, JobStatus.OK))
    return results, gecko, chain


async def bench_w5(url: str, n: int, concurrency: int, rate: float) -> dict[str, float]:
    """One W5-like run (module docstring): CPU and wall per coin of the coin phase."""
    results, gecko, chain = w5_coins(n)
    gate = asyncio.Semaphore(concurrency)
    async with await Store.from_url(url) as store:
        await store.run_started("bench", "manual", datetime.now(UTC), [])
        await store.jobs_recorded("bench", gecko)
        writer = store._coins  # transactions and coins written: the batch sizes

        async def one(result: CoinResult, job: JobRecord) -> None:
            async with gate:
                await store.jobs_recorded("bench", [job])
                await store.coin_completed("bench", result)

        t0, c0 = time.perf_counter(), time.process_time()
        tasks = []
        for i, (result, job) in enumerate(zip(results, chain, strict=True)):
            if rate > 0 and (ahead := t0 + i / rate - time.perf_counter()) > 0:
                await asyncio.sleep(ahead)  # one producer paces the completions
            tasks.append(asyncio.create_task(one(result, job)))
        await asyncio.gather(*tasks)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        summary = RunSummary(
            "bench",
            "manual",
            RunStatus.COMPLETED,
            datetime.now(UTC),
            wall,
            n,
            n,
            0,
            0,
            n + len(gecko),
            0,
            0,
            concurrency,
            jobs=gecko + chain,
        )
        await store.run_finished(summary)
        transactions = writer.transactions
    return {
        "coins": n,
        "rate": rate,
        "cpu_us_per_coin": round(cpu / n * 1e6, 1),
        "wall_us_per_coin": round(wall / n * 1e6, 1),
        "coins_per_transaction": round(n / max(1, transactions), 1),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coins", type=int, default=10_000)
    ap.add_argument("--metrics", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--w5", action="store_true", help="W5's coins and jobs, CPU per coin")
    ap.add_argument("--rate", type=float, default=0.0, help="--w5: coins per second, 0 = all")
    ap.add_argument("--repeats", type=int, default=1, help="--w5: runs, median reported")
    args = ap.parse_args()
    print(
        f"# {platform.node()} · {platform.processor() or platform.machine()} · "
        f"Python {platform.python_version()} · {platform.platform()}"
    )
    if args.backend in ("sqlite", "both"):
        await run_backend("sqlite", None, args)
    if args.backend in ("postgresql", "both"):
        server = PgServer(fsync=True).start()
        try:
            await run_backend("postgresql 15 (fsync on)", server.url, args)
        finally:
            server.stop()


async def run_backend(name: str, url: str | None, args: argparse.Namespace) -> None:
    """Print one JSON line for `name`: the plain bench, or the --w5 medians (and each run)."""
    rows: list[dict[str, Any]] = []
    for _ in range(args.repeats if args.w5 else 1):
        with tempfile.TemporaryDirectory() as tmp:
            at = url or f"sqlite+aiosqlite:///{tmp}/bench.db"
            if args.w5:
                rows.append(await bench_w5(at, args.coins, args.concurrency, args.rate))
            else:
                rows.append(await bench(at, args.coins, args.metrics, args.concurrency))
            if url is not None and args.w5:
                await _drop_tables(url)
    row: dict[str, Any] = rows[0]
    if args.w5:
        keys = ("cpu_us_per_coin", "wall_us_per_coin", "coins_per_transaction")
        row = row | {k: statistics.median(r[k] for r in rows) for k in keys}
        row["cpu_us_per_coin_runs"] = [r["cpu_us_per_coin"] for r in rows]
    print(json.dumps({"backend": name, **row}), flush=True)


async def _drop_tables(url: str) -> None:
    """Empty the PostgreSQL database between repeats (each run starts on a fresh schema)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
