"""The statements a `Store` writes, each idempotent, each on a connection in a transaction.

Every write is an upsert on the row's natural key, so running it twice (a retry after a
lost acknowledgement, a re-run of the end-of-run flush) leaves exactly one row:

- run row: key ``run_id``; `insert_run` ignores an existing row, `finish_run` overwrites
  the totals;
- coin: key ``(run_id, symbol)``; `write_coin` upserts the result row and then every
  observation on ``(run_id, symbol, source, metric)``, in the caller's one transaction, and
  the newest of them per ``(symbol, metric)`` into ``latest_observations``, replacing a
  stored row only if not older (``observed_at`` >=: on a tie the row written last wins);
- jobs: key ``(run_id, job_id, attempt)``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from coinharvest.models import (
    CoinResult,
    CoinStatus,
    Confidence,
    JobRecord,
    JobStatus,
    Observation,
    RunStatus,
    RunSummary,
)
from coinharvest.storage.schema import (
    coin_results,
    job_events,
    latest_observations,
    observations,
    runs,
)
from coinharvest.storage.sqlite_bulk import execute_many

__all__ = [
    "RunStart",
    "finish_run",
    "insert_run",
    "interrupt_runs",
    "probe_writable",
    "running_runs",
    "upsert",
    "write_coin",
    "write_jobs",
    "write_latest",
]


@dataclass(frozen=True, slots=True)
class RunStart:
    """What is known of a run when it starts: enough to write its row at any later moment."""

    run_id: str
    trigger: str
    started_at: datetime
    coins_total: int
    owner: str


def upsert(
    conn: AsyncConnection,
    table: Table,
    keys: Sequence[str],
    update_cols: Sequence[str],
    *,
    unless_older: str | None = None,
) -> Any:
    """INSERT .. ON CONFLICT (keys) DO UPDATE (or NOTHING); built once per shape and dialect.

    With `unless_older` (a column), the stored row is updated only when the new value of that
    column is >= the stored one (``DO UPDATE .. WHERE``); otherwise it is kept.
    Building ``excluded`` columns costs more than executing on SQLite, hence the cache.
    """
    return _upsert_for(conn.dialect.name, table, tuple(keys), tuple(update_cols), unless_older)


@functools.cache
def _upsert_for(
    dialect: str,
    table: Table,
    keys: tuple[str, ...],
    update_cols: tuple[str, ...],
    unless_older: str | None,
) -> Any:
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    if not update_cols:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    where = None
    if unless_older is not None:
        where = table.c[unless_older] <= stmt.excluded[unless_older]
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in update_cols}, where=where
    )


def _run_values(start: RunStart) -> dict[str, Any]:
    return {
        "run_id": start.run_id,
        "trigger": start.trigger,
        "status": RunStatus.RUNNING.value,
        "started_at": start.started_at,
        "coins_total": start.coins_total,
        "coins_ok": 0,
        "coins_failed": 0,
        "coins_deferred": 0,
        "requests": 0,
        "rate_limited": 0,
        "retries": 0,
        "max_in_flight": 0,
        "store_errors": 0,
        "coins_unsaved": 0,
        "owner": start.owner,
    }


async def insert_run(conn: AsyncConnection, start: RunStart) -> None:
    """The run's row with status ``running``; an existing row is left as it is."""
    await conn.execute(upsert(conn, runs, ["run_id"], []), [_run_values(start)])


async def write_coin(
    conn: AsyncConnection, run_id: str, result: CoinResult, stored_at: datetime
) -> None:
    """One coin: its result row and all its observations (call inside one transaction).

    Observations repeating a ``(source, metric)`` keep the last one, as a retry would.
    """
    await write_coins(conn, [(run_id, result)], stored_at)


async def write_coins(
    conn: AsyncConnection, coins: Sequence[tuple[str, CoinResult]], stored_at: datetime
) -> None:
    """Several coins ``(run_id, result)``, each as `write_coin` does, in three statements:
    one for every result row, one for every observation, one for the newest observation of
    each ``(symbol, metric)`` (`write_latest`), inside the caller's one transaction."""
    rows: list[dict[str, Any]] = []
    obs_rows: list[dict[str, Any]] = []
    for run_id, result in coins:
        unique = {(o.source, o.metric): o for o in result.observations}
        rows.append(_result_row(run_id, result, len(unique), stored_at))
        obs_rows += [_observation_row(run_id, result.symbol, o, stored_at) for o in unique.values()]
    if not rows:
        return
    keys = ["run_id", "symbol"]
    update = [k for k in rows[0] if k not in keys]
    await execute_many(conn, upsert(conn, coin_results, keys, update), rows)
    if obs_rows:
        obs_keys = ["run_id", "symbol", "source", "metric"]
        obs_update = ["value", "observed_at", "collected_at", "confidence", "estimated"]
        await execute_many(conn, upsert(conn, observations, obs_keys, obs_update), obs_rows)
        await write_latest(conn, obs_rows)


#: The columns of ``latest_observations`` taken from an observation row.
_LATEST = ("value", "source", "confidence", "estimated", "observed_at", "run_id")


async def write_latest(conn: AsyncConnection, obs_rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert the newest of `obs_rows` per ``(symbol, metric)`` into ``latest_observations``,
    in the order written: on equal ``observed_at`` the later row wins, in the batch as in
    the table (a stored row is replaced when the new one is not older)."""
    newest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in obs_rows:
        key = (row["symbol"], row["metric"])
        kept = newest.get(key)
        if kept is None or row["observed_at"] >= kept["observed_at"]:
            newest[key] = row
    if not newest:
        return
    # One row per key: PostgreSQL refuses to update a row twice in one statement.
    stmt = upsert(
        conn, latest_observations, ["symbol", "metric"], _LATEST, unless_older="observed_at"
    )
    await execute_many(conn, stmt, list(newest.values()), ("symbol", "metric", *_LATEST))


def _result_row(
    run_id: str, result: CoinResult, observation_count: int, stored_at: datetime
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "symbol": result.symbol,
        "name": result.name,
        "status": result.status.value,
        "started_at": result.started_at,
        "duration_s": result.duration_s,
        "attempts": result.attempts,
        "sources": ",".join(result.sources),
        "error": result.error,
        "notes": "\n".join(result.notes) or None,
        "observation_count": observation_count,
        "stored_at": stored_at,
    }


#: Each level's stored text (an enum's ``.value`` is a slow property, read for every row).
_CONFIDENCE = {level: level.value for level in Confidence}


def _observation_row(
    run_id: str, symbol: str, o: Observation, stored_at: datetime
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "symbol": symbol,
        "source": o.source,
        "metric": o.metric,
        "value": o.value,
        "observed_at": o.observed_at,
        "collected_at": stored_at,
        "confidence": _CONFIDENCE[o.confidence],
        "estimated": o.estimated,
    }


async def write_jobs(conn: AsyncConnection, run_id: str, jobs: Sequence[JobRecord]) -> None:
    """The run's job timeline (one row per attempt)."""
    if not jobs:
        return
    rows = [
        {
            "run_id": run_id,
            "job_id": j.job_id,
            "attempt": j.attempt,
            "source": j.source,
            "symbols": ",".join(j.symbols),
            "queued_s": j.queued_s,
            "started_s": j.started_s,
            "ended_s": j.ended_s,
            "status": j.status.value,
            "error": j.error,
        }
        for j in jobs
    ]
    keys = ["run_id", "job_id", "attempt"]
    cols = ["source", "symbols", "queued_s", "started_s", "ended_s", "status", "error"]
    await execute_many(conn, upsert(conn, job_events, keys, cols), rows)


async def finish_run(
    conn: AsyncConnection,
    start: RunStart,
    summary: RunSummary,
    *,
    status: RunStatus,
    finished_at: datetime,
    unsaved: int,
    error: str | None,
) -> None:
    """The run row's final totals and status (inserting the row if the start was lost)."""
    values = _run_values(start) | {
        "status": status.value,
        "finished_at": finished_at,
        "duration_s": summary.duration_s,
        "coins_total": summary.coins_total,
        "coins_ok": summary.coins_ok,
        "coins_failed": summary.coins_failed,
        "coins_deferred": summary.coins_deferred,
        "requests": summary.requests,
        "rate_limited": summary.rate_limited,
        "retries": summary.retries,
        "max_in_flight": summary.max_in_flight,
        "store_errors": summary.store_errors,
        "coins_unsaved": unsaved,
        "error": error,
    }
    cols = [k for k in values if k not in {"run_id", "started_at", "trigger", "owner"}]
    await conn.execute(upsert(conn, runs, ["run_id"], cols), [values])


async def running_runs(conn: AsyncConnection) -> Mapping[str, tuple[str | None, datetime]]:
    """Runs whose row still says ``running``: run id → (owner, started_at)."""
    rows = await conn.execute(
        select(runs.c.run_id, runs.c.owner, runs.c.started_at).where(
            runs.c.status == RunStatus.RUNNING.value
        )
    )
    return {r.run_id: (r.owner, r.started_at) for r in rows}


async def interrupt_runs(conn: AsyncConnection, run_ids: Sequence[str], reason: str) -> None:
    """Mark `run_ids` ``interrupted``, with their coin and request totals counted from what
    was stored (coins, and the job timeline written with them)."""
    if not run_ids:
        return

    def count(status: CoinStatus) -> Any:
        return (
            select(func.count())
            .where(coin_results.c.run_id == runs.c.run_id, coin_results.c.status == status.value)
            .scalar_subquery()
        )

    def attempts(*statuses: JobStatus) -> Any:
        query = select(func.count()).where(
            job_events.c.run_id == runs.c.run_id, job_events.c.started_s.is_not(None)
        )
        if statuses:
            query = query.where(job_events.c.status.in_([s.value for s in statuses]))
        return query.scalar_subquery()

    await conn.execute(
        update(runs)
        .where(runs.c.run_id.in_(run_ids), runs.c.status == RunStatus.RUNNING.value)
        .values(
            status=RunStatus.INTERRUPTED.value,
            coins_ok=count(CoinStatus.OK),
            coins_failed=count(CoinStatus.FAILED),
            coins_deferred=count(CoinStatus.DEFERRED),
            # Requests as far as the stored timeline goes (written with each coin).
            requests=attempts(),
            rate_limited=attempts(JobStatus.RATE_LIMITED),
            retries=attempts(JobStatus.RATE_LIMITED, JobStatus.RETRIED),
            error=func.coalesce(runs.c.error, reason),
        )
    )


async def probe_writable(conn: AsyncConnection) -> None:
    """A write that changes nothing: fails on a read-only database or transaction."""
    await conn.execute(update(runs).where(runs.c.run_id.is_(None)).values(status=runs.c.status))
