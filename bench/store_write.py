"""Store write throughput: one run of N coins x M metrics through `Store`, as the engine does.

    python bench/store_write.py                       # 10,000 coins x 8 metrics, both backends
    python bench/store_write.py --backend sqlite --coins 2000

Each coin is one `coin_completed` call (one transaction: result row + M observations), up to
`--concurrency` in progress at once like concurrent completions in the engine; then
`run_finished` writes the run's totals and its job timeline (one job per coin). SQLite is a
fresh file in a temp dir (WAL, synchronous=NORMAL, the store's defaults). PostgreSQL is a
throwaway server started here (initdb + pg_ctl, like the test fixture) with fsync ON, the
server's defaults otherwise, and the store's pool of 5 connections.
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


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coins", type=int, default=10_000)
    ap.add_argument("--metrics", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args()
    print(
        f"# {platform.node()} · {platform.processor() or platform.machine()} · "
        f"Python {platform.python_version()} · {platform.platform()}"
    )
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            row = await bench(url, args.coins, args.metrics, args.concurrency)
            print(json.dumps({"backend": "sqlite", **row}))
    if args.backend in ("postgresql", "both"):
        server = PgServer(fsync=True).start()
        try:
            row = await bench(server.url, args.coins, args.metrics, args.concurrency)
            print(json.dumps({"backend": "postgresql 15 (fsync on)", **row}))
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
