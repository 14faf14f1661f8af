"""Helpers for engine tests: build coins and run an engine on the virtual clock."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from vclock import run_virtual

from coinharvest.engine import Engine
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import Coin, JobRecord, RunSummary, SourceLimits
from coinharvest.sources.base import Source


def coin(symbol: str, *sources: str, priority: int = 5, chain: Sequence[str] = ()) -> Coin:
    """A coin served by `sources` (each its own chain), plus one fallback `chain` if given."""
    ids = {s: symbol.lower() for s in (*sources, *chain)}
    chains = tuple((s,) for s in sources) + ((tuple(chain),) if chain else ())
    return Coin(symbol=symbol, name=f"{symbol} coin", ids=ids, chains=chains, priority=priority)


def run_engine(
    sources: Sequence[Source],
    coins: Sequence[Coin],
    *,
    max_concurrency: int = 5,
    limits: Mapping[str, SourceLimits] | None = None,
    pause_after_job_s: float = 0.0,
    deadline_s: float | None = None,
    max_attempts: int = 4,
    seed: int = 0,
) -> RunSummary:
    """Run one collection on a fresh virtual-time loop and return its summary."""

    async def go() -> RunSummary:
        engine = Engine(
            {s.name: s for s in sources},
            max_concurrency=max_concurrency,
            limits=limits,
            pause_after_job_s=pause_after_job_s,
            retry=RetryPolicy(max_attempts=max_attempts, rng=random.Random(seed)),
        )
        return await engine.run(coins, deadline_s=deadline_s)

    return run_virtual(go())


def starts(summary: RunSummary, source: str) -> list[float]:
    """Start times (run-relative) of every attempt at `source`, sorted."""
    return sorted(
        r.started_s for r in summary.jobs if r.source == source and r.started_s is not None
    )


def attempts(summary: RunSummary) -> list[JobRecord]:
    """Every attempt that actually started."""
    return [r for r in summary.jobs if r.started_s is not None]


def ended(record: JobRecord) -> float:
    """When `record`, an attempt that started, ended (each has, once its run is over)."""
    assert record.ended_s is not None, record
    return record.ended_s


def span(record: JobRecord) -> tuple[float, float]:
    """When `record`, an attempt that started, started and ended."""
    assert record.started_s is not None, record
    return record.started_s, ended(record)
