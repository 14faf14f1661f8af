"""Group commit: coins completing together share a transaction, each still whole or not at all."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

from enginekit import coin
from sqlalchemy import text

from coinharvest.engine import Engine
from coinharvest.errors import StoreError
from coinharvest.models import RunStatus
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.storage import Store

from .faults import FaultInjector
from .storekit import T0, result


def _batched_run(store: Store, n: int) -> Engine:
    """One source answering `n` coins in one request: they all complete at once."""
    return Engine({"coingecko": SimulatedSource("coingecko", batch_size=n, seed=1)}, sink=store)


async def _stored(store: Store) -> set[str]:
    async with store.engine.connect() as conn:
        return {r.symbol for r in await conn.execute(text("SELECT symbol FROM coin_results"))}


async def test_coins_completing_together_share_transactions(store: Store) -> None:
    coins = [coin(f"G{i:03d}", "coingecko") for i in range(200)]
    summary = await _batched_run(store, 200).run(coins)
    assert summary.status is RunStatus.COMPLETED and summary.store_errors == 0
    assert await _stored(store) == {c.symbol for c in coins}
    writer = store._coins  # the seam the store writes coins through
    assert writer.coins == 200
    assert writer.transactions <= 20, writer.transactions  # not one per coin
    async with store.engine.connect() as conn:
        jobs = (await conn.execute(text("SELECT count(*) FROM job_events"))).scalar_one()
    assert jobs == 1  # the one request, written once


async def test_a_coin_refused_by_the_database_fails_alone_in_its_batch(
    faulty_store: tuple[Store, FaultInjector],
) -> None:
    store, faults = faulty_store
    faults.permanent = True  # an integrity error: no retry helps
    faults.fail_observations_of("G007")
    coins = [coin(f"G{i:03d}", "coingecko") for i in range(50)]
    summary = await _batched_run(store, 50).run(coins)
    assert summary.store_errors >= 1
    assert set(store.unsaved(summary.run_id)) == {"G007"}
    stored = await _stored(store)
    assert stored == {c.symbol for c in coins} - {"G007"}  # its result row rolled back too


async def test_a_lone_coin_is_written_at_once(store: Store) -> None:
    rng = random.Random(3)
    latencies = {f"L{i}": 0.05 * i + rng.uniform(0, 0.01) for i in range(5)}
    src = SimulatedSource("coingecko", latencies=latencies, seed=1)
    engine = Engine({"coingecko": src}, sink=store)
    await engine.run([coin(f"L{i}", "coingecko") for i in range(5)])
    assert store._coins.transactions == 5  # spread-out completions: one each, no waiting


async def test_a_value_its_column_cannot_take_fails_that_coin_alone(store: Store) -> None:
    """A plug-in's naive `observed_at` (no time zone) is refused while binding: that coin
    fails with a StoreError, the good coin of the same batch is stored, nobody hangs."""
    await store.run_started("r1", "manual", T0, [])
    bad = result("BAD")
    bad.observations[0] = replace(bad.observations[0], observed_at=T0.replace(tzinfo=None))
    good = [result(f"OK{i}") for i in range(5)]
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            *(store.coin_completed("r1", r) for r in [*good, bad]), return_exceptions=True
        ),
        timeout=10,
    )
    assert all(o is None for o in outcomes[:-1])
    assert isinstance(outcomes[-1], StoreError)
    assert await _stored(store) == {r.symbol for r in good}
