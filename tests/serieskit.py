"""Series of observations written straight into the tables, at fixed times (no wall clock):
one run per `fill_run`, its coin row, its observations and `latest_observations`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.storage.schema import (
    coin_results,
    job_events,
    latest_observations,
    observations,
    runs,
)

#: A fixed instant: nothing here depends on today's date.
T0 = datetime(2025, 6, 1, tzinfo=UTC)


def secs(n: float) -> timedelta:
    return timedelta(seconds=n)


async def fill_run(
    db: AsyncEngine,
    run_id: str,
    at: datetime,
    points: Sequence[tuple[datetime, float]],
    *,
    symbol: str = "BTC",
    metric: str = "price_usd",
    jobs: int = 1,
) -> None:
    """A finished run started `at` with `points` of one metric (one source per point)."""
    run: dict[str, object] = {"run_id": run_id, "trigger": "test", "status": "ok", "started_at": at}
    run |= {"finished_at": at, "coins_total": 1, "error": None}
    coin: dict[str, object] = {"run_id": run_id, "symbol": symbol, "name": symbol, "status": "ok"}
    coin |= {"started_at": at, "duration_s": 0.1, "attempts": 1, "sources": "s"}
    coin |= {"observation_count": len(points), "stored_at": at}
    obs = [
        {"run_id": run_id, "symbol": symbol, "source": f"s{i}", "metric": metric, "value": v}
        | {"observed_at": t, "collected_at": t, "confidence": "high", "estimated": False}
        for i, (t, v) in enumerate(points)
    ]
    events = [
        {"run_id": run_id, "job_id": j, "attempt": 1, "source": "s", "symbols": symbol}
        | {"queued_s": 0.0, "started_s": 0.0, "ended_s": 0.1, "status": "ok"}
        for j in range(jobs)
    ]
    async with db.begin() as conn:
        await conn.execute(insert(runs), [run])
        await conn.execute(insert(coin_results), [coin])
        for i in range(0, len(obs), 5000):
            await conn.execute(insert(observations), obs[i : i + 5000])
        if events:
            await conn.execute(insert(job_events), events)
        if points:
            i, (t, v) = max(enumerate(points), key=lambda p: (p[1][0], p[0]))
            key = {"symbol": symbol, "metric": metric}
            await conn.execute(delete(latest_observations).filter_by(**key))
            await conn.execute(
                insert(latest_observations),
                [
                    key
                    | {"value": v, "source": f"s{i}", "confidence": "high", "estimated": False}
                    | {"observed_at": t, "run_id": run_id}
                ],
            )
