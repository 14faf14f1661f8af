"""Helpers of the storage tests (not fixtures: those are in conftest.py): fast retries, a
recent instant `T0`, and coin results to store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.models import CoinResult, CoinStatus, Confidence, Observation
from coinharvest.storage import WritePolicy

#: Retries fast enough for tests (same shape as production).
FAST = WritePolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05)


#: A recent instant, relative to now, so that no test depends on today's date (data two
#: hours old is neither stale nor in the future, whatever day the tests run).
T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)


def result(
    symbol: str,
    metrics: int = 8,
    *,
    status: CoinStatus = CoinStatus.OK,
    at: datetime = T0,
    source: str = "coingecko",
    value: float = 1.0,
) -> CoinResult:
    """A coin result with `metrics` observations ``m0..m{n-1}`` valued `value`+i."""
    obs = [
        Observation(symbol, source, f"m{i}", value + i, at, Confidence.HIGH) for i in range(metrics)
    ]
    return CoinResult(
        symbol=symbol,
        name=f"{symbol} coin",
        status=status,
        started_at=at,
        duration_s=0.25,
        attempts=1,
        sources=(source,),
        observations=obs,
        errors=[] if status is CoinStatus.OK else ["boom"],
    )


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


async def stored_coins(engine: AsyncEngine) -> dict[str, tuple[int, int, list[str]]]:
    """Per stored coin: the observation count its row promises, the observation rows really
    there, and its sources (a whole coin has the first two equal)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.symbol, c.observation_count, c.sources, "
                "(SELECT count(*) FROM observations o WHERE o.run_id = c.run_id "
                " AND o.symbol = c.symbol) AS n FROM coin_results c"
            )
        )
        return {r.symbol: (r.observation_count, r.n, r.sources.split(",")) for r in rows}


async def orphan_observations(engine: AsyncEngine) -> int:
    """Observations stored without their coin's result row (never expected)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) FROM observations o WHERE NOT EXISTS (SELECT 1 FROM "
                "coin_results c WHERE c.run_id = o.run_id AND c.symbol = o.symbol)"
            )
        )
        return int(found.scalar_one())
