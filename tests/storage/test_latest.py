"""``latest_observations``: kept with every write, it answers `latest_values` exactly as the
ranking of every observation did (newest ``observed_at``, ties to the row written last), on
both backends, and revision 0005 fills it from the observations already stored."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.models import CoinResult, CoinStatus, Confidence, Observation
from coinharvest.storage import Store, queries, writes
from coinharvest.storage.database import create_engine
from coinharvest.storage.migrate import current_revision, upgrade
from coinharvest.storage.schema import coin_results, observations, runs

from .storekit import FAST, T0, minutes

Latest = tuple[str, str, float | None, str, str, bool, datetime, str]


async def window_latest(db: AsyncEngine) -> list[Latest]:
    """The newest observation per (symbol, metric) ranked over every observation: the query
    `latest_values` ran before revision 0005, kept as the reference."""
    rank = (
        func.row_number()
        .over(
            partition_by=(observations.c.symbol, observations.c.metric),
            order_by=(observations.c.observed_at.desc(), observations.c.id.desc()),
        )
        .label("rank")
    )
    ranked = select(observations, rank).subquery()
    stmt = select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.symbol, ranked.c.metric)
    async with db.connect() as conn:
        found = await conn.execute(stmt)
        return [_as_latest(r, bool(r.estimated)) for r in found]


async def table_latest(db: AsyncEngine) -> list[Latest]:
    return [_as_latest(v, v.estimated) for v in await queries.latest_values(db)]


def _as_latest(r: Any, estimated: bool) -> Latest:
    return (r.symbol, r.metric, r.value, r.source, r.confidence, estimated, r.observed_at, r.run_id)


def random_coin(rng: random.Random, symbol: str, run: int) -> CoinResult:
    """A coin whose observations repeat times (ties, also between two sources of one
    metric) and go back in time from run to run; a (source, metric) may repeat."""
    obs = []
    for _ in range(rng.randint(1, 12)):
        at = T0 + minutes(rng.choice([0, 5, 10]) + 5 * run * rng.choice([0, 1, -1]))
        source, metric = rng.choice(["coingecko", "3xpl", "blockchair"]), f"m{rng.randint(0, 5)}"
        value = rng.choice([None, round(rng.uniform(0, 100), 3)])
        level = rng.choice(list(Confidence))
        obs.append(Observation(symbol, source, metric, value, at, level, rng.random() < 0.3))
    sources = tuple(sorted({o.source for o in obs}))
    return CoinResult(symbol, f"{symbol} coin", CoinStatus.OK, T0, 0.1, 1, sources, obs, [])


async def test_latest_after_many_runs_equals_the_window_ranking(store: Store) -> None:
    rng = random.Random(5)
    symbols = [f"C{i:02d}" for i in range(12)]
    for run in range(100):
        run_id = f"r{run:02d}"
        await store.run_started(run_id, "schedule", T0 + minutes(run), [])
        # Completing together: the group commit writes them in batches of several coins.
        coins = [random_coin(rng, s, run) for s in rng.sample(symbols, rng.randint(1, 12))]
        await asyncio.gather(*(store.coin_completed(run_id, c) for c in coins))
    # One batch holding one symbol of two runs, written in one `write_coins`.
    async with store.engine.begin() as conn:
        for run_id in ("x1", "x2"):
            start = writes.RunStart(run_id, "manual", T0, 1, "test")
            await writes.insert_run(conn, start)
        pair = [("x1", random_coin(rng, "C00", 3)), ("x2", random_coin(rng, "C00", 3))]
        await writes.write_coins(conn, pair, T0)
    async with store.engine.connect() as conn:
        count = select(func.count()).select_from(observations)
        assert (await conn.execute(count)).scalar_one() > 2000
    expected = await window_latest(store.engine)
    assert len(expected) > 50
    assert await table_latest(store.engine) == expected


async def test_an_older_write_leaves_a_newer_latest_and_a_tie_replaces_it(store: Store) -> None:
    def coin(value: float, at: datetime, source: str) -> CoinResult:
        obs = [Observation("BTC", source, "price", value, at, Confidence.HIGH)]
        return CoinResult("BTC", "Bitcoin", CoinStatus.OK, at, 0.1, 1, (source,), obs, [])

    for run_id, value, at, source in [
        ("r1", 1.0, T0 + minutes(10), "coingecko"),
        ("r2", 2.0, T0, "coingecko"),  # older: kept out
        ("r3", 3.0, T0 + minutes(10), "3xpl"),  # same time, written later: wins
    ]:
        await store.run_started(run_id, "manual", T0, [])
        await store.coin_completed(run_id, coin(value, at, source))
    [latest] = await queries.latest_values(store.engine, ["btc"])
    assert (latest.value, latest.source, latest.run_id) == (3.0, "3xpl", "r3")
    assert await table_latest(store.engine) == await window_latest(store.engine)


async def test_revision_0004_is_upgraded_to_0005_filling_latest(db_url: str) -> None:
    engine = create_engine(db_url)
    rng = random.Random(7)
    try:
        assert await upgrade(engine, "0004") == "0004"
        async with engine.begin() as conn:
            for run in range(30):
                await _insert_at_0004(
                    conn, f"r{run:02d}", [random_coin(rng, f"C{i}", run) for i in range(8)]
                )
        async with Store(engine, policy=FAST) as store:  # opening migrates to 0005
            assert await current_revision(engine) == "0007"
            expected = await window_latest(engine)
            assert len(expected) > 30 and await table_latest(engine) == expected
            # And is kept from then on.
            await store.run_started("new", "manual", T0, [])
            await store.coin_completed("new", random_coin(rng, "C1", 40))
            assert await table_latest(engine) == await window_latest(engine)
    finally:
        await engine.dispose()


async def _insert_at_0004(conn: Any, run_id: str, coins: list[CoinResult]) -> None:
    """A run's rows as revision 0004 stored them (no latest_observations yet)."""
    await conn.execute(
        runs.insert(),
        [
            {
                "run_id": run_id,
                "trigger": "schedule",
                "status": "completed",
                "started_at": T0,
                "coins_total": len(coins),
                "coins_unsaved": 0,
            }
        ],
    )
    await conn.execute(
        coin_results.insert(),
        [
            {
                "run_id": run_id,
                "symbol": c.symbol,
                "name": c.name,
                "status": "ok",
                "duration_s": 0.1,
                "attempts": 1,
                "sources": "x",
                "observation_count": len(c.observations),
                "stored_at": T0,
            }
            for c in coins
        ],
    )
    rows = {
        (c.symbol, o.source, o.metric): {
            "run_id": run_id,
            "symbol": c.symbol,
            "source": o.source,
            "metric": o.metric,
            "value": o.value,
            "observed_at": o.observed_at,
            "collected_at": T0,
            "confidence": o.confidence.value,
            "estimated": o.estimated,
        }
        for c in coins
        for o in c.observations
    }
    await conn.execute(observations.insert(), list(rows.values()))
