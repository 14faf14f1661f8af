"""A collection run that a test SIGKILLs mid-way: ``python killable_run.py DB_FILE N``.

Collects N coins from a simulated source (8 metrics per coin, latencies spread over about
4 s, 4 at a time) into the SQLite file DB_FILE, and prints ``stored SYMBOL`` (flushed) each
time the store has committed a coin, so the test knows what must survive.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from coinharvest.engine import Engine
from coinharvest.models import Coin, CoinResult, JobRecord, Observation, RunSummary
from coinharvest.sources.base import FetchResult
from coinharvest.sources.simulated import SimulatedSource
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
)


class EightMetrics(SimulatedSource):
    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        await super().fetch(coins)
        now = datetime.now(UTC)
        return {
            c.symbol: [
                Observation(c.symbol, self.name, m, float(i), now) for i, m in enumerate(METRICS)
            ]
            for c in coins
        }


class Announcing:
    """Wraps the store: says which coins are committed, after the commit."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def run_started(
        self, run_id: str, trigger: str, started_at: datetime, coins: Sequence[Coin]
    ) -> None:
        await self.store.run_started(run_id, trigger, started_at, coins)
        print(f"run {run_id}", flush=True)

    async def jobs_recorded(self, run_id: str, jobs: Sequence[JobRecord]) -> None:
        await self.store.jobs_recorded(run_id, jobs)

    async def coin_completed(self, run_id: str, result: CoinResult) -> None:
        await self.store.coin_completed(run_id, result)
        print(f"stored {result.symbol}", flush=True)

    async def run_finished(self, summary: RunSummary) -> None:
        await self.store.run_finished(summary)
        print("finished", flush=True)


async def main(db_file: str, n: int) -> None:
    coins = [Coin(f"K{i:03d}", f"Coin {i}", {"sim": f"k{i}"}, (("sim",),)) for i in range(n)]
    latencies = {c.symbol: 0.05 + (i % 7) * 0.03 for i, c in enumerate(coins)}
    source = EightMetrics("sim", latencies=latencies)
    async with await Store.from_url(f"sqlite+aiosqlite:///{db_file}") as store:
        engine = Engine({"sim": source}, max_concurrency=4, sink=Announcing(store))
        await engine.run(coins)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
