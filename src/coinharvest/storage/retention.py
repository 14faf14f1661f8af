"""Retention: delete what is older than a cutoff, in short batches.

`prune(db, cutoff)` deletes, each in transactions of at most `batch` rows (so that the first
prune of a big database never holds a long write lock: readers and the next run's writes
get in between batches):

1. observations with ``observed_at < cutoff``, **except the newest of each (coin, metric)**:
   the row ``latest_observations`` points at stays, so ``latest`` and the dashboard keep
   showing every metric's last known value however old it is, and that value stays in the
   history too (``latest_observations`` and ``observations`` stay consistent);
2. coin results stored before the cutoff that have no observation left;
3. job events of runs started before ``min(cutoff, now - 32 days)``: they count requests
   against daily and monthly quotas (`coinharvest.storage.usage`), so they outlive a
   retention shorter than a month.

Runs themselves (one small row per run) are kept: ``runs`` lists stay complete.
`dry_run` counts what would go and deletes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, not_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.storage.failures import translate
from coinharvest.storage.schema import (
    coin_results,
    job_events,
    latest_observations,
    observations,
    runs,
)

__all__ = ["BATCH_ROWS", "QUOTA_DAYS", "Pruned", "prune", "prune_after_run"]

log = logging.getLogger("coinharvest.storage.retention")

#: Rows deleted per transaction.
BATCH_ROWS = 10_000
#: Job events are kept at least this long: the monthly quota counts them.
QUOTA_DAYS = 32


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows deleted (or, in a dry run, that would be)."""

    observations: int
    coin_results: int
    job_events: int

    @property
    def total(self) -> int:
        return self.observations + self.coin_results + self.job_events


def _old_observations(cutoff: datetime) -> Any:
    o, latest = observations.c, latest_observations.c
    is_latest = exists().where(
        latest.symbol == o.symbol,
        latest.metric == o.metric,
        latest.run_id == o.run_id,
        latest.source == o.source,
    )
    return and_(o.observed_at < cutoff, not_(is_latest))


def _empty_coin_results(cutoff: datetime) -> Any:
    c, o = coin_results.c, observations.c
    left = exists().where(
        o.run_id == c.run_id, o.symbol == c.symbol, not_(_old_observations(cutoff))
    )
    return and_(c.stored_at < cutoff, not_(left))


def _old_job_events(cutoff: datetime) -> Any:
    old_runs = select(runs.c.run_id).where(runs.c.started_at < cutoff)
    return job_events.c.run_id.in_(old_runs)


async def prune(
    db: AsyncEngine,
    cutoff: datetime,
    *,
    now: datetime | None = None,
    batch: int = BATCH_ROWS,
    dry_run: bool = False,
) -> Pruned:
    """Delete what is older than `cutoff` (see the module docstring); `now` (default: the
    clock) only sets the job events' 32-day floor.

    :raises StoreError: the database failed (batches already committed stay deleted).
    """
    now = now or datetime.now(UTC)
    job_cutoff = min(cutoff, now - timedelta(days=QUOTA_DAYS))
    o, c, j = observations.c, coin_results.c, job_events.c
    steps: list[tuple[Any, Any, Any]] = [
        (observations, (o.id,), _old_observations(cutoff)),
        (coin_results, (c.run_id, c.symbol), _empty_coin_results(cutoff)),
        (job_events, (j.run_id, j.job_id, j.attempt), _old_job_events(job_cutoff)),
    ]
    counts = []
    with translate("cannot prune old rows"):
        for table, key, where in steps:
            if dry_run:
                counts.append(await _count(db, table, where))
            else:
                counts.append(await _delete_in_batches(db, table, key, where, batch))
    return Pruned(*counts)


async def _count(db: AsyncEngine, table: Any, where: Any) -> int:
    async with db.connect() as conn:
        found = await conn.execute(select(func.count()).select_from(table).where(where))
        return int(found.scalar_one())


async def _delete_in_batches(db: AsyncEngine, table: Any, key: Any, where: Any, batch: int) -> int:
    """Delete the rows of `table` matching `where`, `batch` keys per transaction."""
    # correlate(None): the subquery reads `table` itself, not the row being deleted
    chosen = select(*key).select_from(table).where(where).limit(batch).correlate(None)
    if len(key) == 1:
        stmt = delete(table).where(key[0].in_(chosen.scalar_subquery()))
    else:
        stmt = delete(table).where(tuple_(*key).in_(chosen))
    total = 0
    while True:
        async with db.begin() as conn:
            done = (await conn.execute(stmt)).rowcount
        total += done
        if done < batch:
            return total


async def prune_after_run(
    db: AsyncEngine, retention_days: int, *, now: datetime | None = None
) -> Pruned | None:
    """`prune` older than `retention_days` before `now` (default: the clock; 0 days:
    nothing, None). A failure is logged, not raised: pruning never fails a run."""
    if retention_days <= 0:
        return None
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    try:
        pruned = await prune(db, cutoff, now=now)
    except Exception as exc:  # a run's outcome is already stored; pruning retries next time
        log.warning("pruning data older than %d days failed: %s", retention_days, exc)
        return None
    if pruned.total:
        log.info(
            "pruned %d observations, %d coin results, %d job events older than %d days",
            pruned.observations,
            pruned.coin_results,
            pruned.job_events,
            retention_days,
        )
    return pruned
