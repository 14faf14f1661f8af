"""Reading what was stored: runs, one run in detail, latest values, a metric's history, export.

Every function takes an `AsyncEngine` (from `reader()` or `Store.engine`) and returns plain
frozen records with an ``as_dict()`` for JSON output. Database failures become `StoreError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.storage.failures import translate
from coinharvest.storage.schema import (
    coin_results,
    job_events,
    latest_observations,
    observations,
    runs,
)

__all__ = [
    "CoinRow",
    "HistoryPoint",
    "JobRow",
    "LatestValue",
    "ObservationRow",
    "RunDetail",
    "RunRow",
    "build_row",
    "columns",
    "export_rows",
    "history",
    "latest_values",
    "list_runs",
    "run_detail",
    "success_times",
    "why_no_history",
]


class _Record:
    def as_dict(self) -> dict[str, Any]:
        """Fields as JSON-ready values (datetimes as ISO 8601)."""
        return {k: _jsonable(v) for k, v in asdict(self).items()}  # type: ignore[call-overload]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        # As the API writes them (pydantic): 2026-11-30T10:00:01.123456Z, one format for both.
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class RunRow(_Record):
    """One run as stored."""

    run_id: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    coins_total: int
    coins_ok: int
    coins_failed: int
    coins_deferred: int
    coins_unsaved: int
    requests: int
    rate_limited: int
    retries: int
    max_in_flight: int
    store_errors: int
    error: str | None


@dataclass(frozen=True, slots=True)
class CoinRow(_Record):
    """One coin's result in one run."""

    symbol: str
    name: str
    status: str
    started_at: datetime | None
    duration_s: float
    attempts: int
    sources: str
    error: str | None
    #: Metrics the sources could not give, and why: one per line (revision 0003).
    notes: str | None
    observation_count: int


@dataclass(frozen=True, slots=True)
class JobRow(_Record):
    """One attempt of one job; times in seconds from the run's start."""

    job_id: int
    attempt: int
    source: str
    symbols: str
    queued_s: float
    started_s: float | None
    ended_s: float | None
    status: str
    error: str | None


@dataclass(frozen=True, slots=True)
class RunDetail(_Record):
    """A run with its per-coin results and its job timeline (ordered by start)."""

    run: RunRow
    coins: list[CoinRow]
    jobs: list[JobRow]


@dataclass(frozen=True, slots=True)
class LatestValue(_Record):
    """The newest value of one metric of one coin, whichever source gave it."""

    symbol: str
    metric: str
    value: float | None
    source: str
    confidence: str
    estimated: bool
    observed_at: datetime
    age_s: float
    run_id: str


@dataclass(frozen=True, slots=True)
class HistoryPoint(_Record):
    """One value of a metric's history."""

    observed_at: datetime
    value: float | None
    source: str
    confidence: str
    run_id: str


@dataclass(frozen=True, slots=True)
class ObservationRow(_Record):
    """One stored observation, flat, for export."""

    run_id: str
    symbol: str
    source: str
    metric: str
    value: float | None
    observed_at: datetime
    collected_at: datetime
    confidence: str
    estimated: bool


def build_row(cls: type[Any], row: Any) -> Any:
    """The dataclass `cls` from the like-named columns of `row`."""
    return cls(**{name: row._mapping[name] for name in cls.__dataclass_fields__})


async def list_runs(db: AsyncEngine, *, limit: int = 20) -> list[RunRow]:
    """The newest `limit` runs, newest first."""
    stmt = select(*columns(runs, RunRow)).order_by(runs.c.started_at.desc()).limit(limit)
    with translate("cannot read runs"):
        async with db.connect() as conn:
            return [build_row(RunRow, r) for r in await conn.execute(stmt)]


async def success_times(db: AsyncEngine) -> tuple[datetime | None, dict[str, datetime]]:
    """When the last run that collected anything (completed or partial) finished, and each
    coin's last ``ok`` result (for the service's last-success gauges at start-up)."""
    last_run = select(func.max(runs.c.finished_at)).where(
        runs.c.status.in_(("completed", "partial"))
    )
    per_coin = (
        select(coin_results.c.symbol, func.max(coin_results.c.stored_at))
        .where(coin_results.c.status == "ok")
        .group_by(coin_results.c.symbol)
    )
    with translate("cannot read the last successes"):
        async with db.connect() as conn:
            run_at = (await conn.execute(last_run)).scalar()
            coins = {symbol: at for symbol, at in await conn.execute(per_coin) if at is not None}
    return run_at, coins


async def run_detail(db: AsyncEngine, run_id: str) -> RunDetail | None:
    """The run `run_id` (or the only run whose id starts with it); None if none/ambiguous."""
    with translate(f"cannot read run {run_id}"):
        async with db.connect() as conn:
            found = list(
                await conn.execute(
                    select(*columns(runs, RunRow))
                    # autoescape: "%", "_" and the escape character "/" are literal
                    .where(runs.c.run_id.startswith(run_id, autoescape=True))
                    .limit(2)
                )
            )
            exact = [r for r in found if r.run_id == run_id]
            if not exact and len(found) != 1:
                return None
            run = build_row(RunRow, (exact or found)[0])
            coins = await conn.execute(
                select(*columns(coin_results, CoinRow))
                .where(coin_results.c.run_id == run.run_id)
                .order_by(coin_results.c.stored_at, coin_results.c.symbol)
            )
            jobs = await conn.execute(
                select(*columns(job_events, JobRow))
                .where(job_events.c.run_id == run.run_id)
                .order_by(job_events.c.queued_s, job_events.c.job_id, job_events.c.attempt)
            )
            return RunDetail(
                run, [build_row(CoinRow, c) for c in coins], [build_row(JobRow, j) for j in jobs]
            )


async def latest_values(
    db: AsyncEngine, symbols: Sequence[str] = (), *, now: datetime | None = None
) -> list[LatestValue]:
    """The newest value of every (coin, metric), for `symbols` (all when empty).

    Ties on ``observed_at`` go to the row written last. Read from ``latest_observations``
    (kept with every write), by its primary key: no scan of the observations.
    """
    now = now or datetime.now(UTC)
    stmt = select(latest_observations)
    if symbols:
        stmt = stmt.where(latest_observations.c.symbol.in_([s.upper() for s in symbols]))
    stmt = stmt.order_by(latest_observations.c.symbol, latest_observations.c.metric)
    with translate("cannot read latest values"):
        async with db.connect() as conn:
            rows = list(await conn.execute(stmt))
    return [
        LatestValue(
            symbol=r.symbol,
            metric=r.metric,
            value=r.value,
            source=r.source,
            confidence=r.confidence,
            estimated=bool(r.estimated),
            observed_at=r.observed_at,
            age_s=(now - r.observed_at).total_seconds(),
            run_id=r.run_id,
        )
        for r in rows
    ]


async def history(
    db: AsyncEngine,
    symbol: str,
    metric: str,
    *,
    since: datetime | None = None,
    newest: int | None = None,
) -> list[HistoryPoint]:
    """The stored values of `metric` of `symbol` (since `since`), oldest first: every one,
    or only the `newest` that many (read newest first on the index, then reversed). For
    every value of a long history, page with `coinharvest.storage.paging.history_page`."""
    col = observations.c
    stmt = select(*columns(observations, HistoryPoint))
    stmt = stmt.where(col.symbol == symbol.upper(), col.metric == metric)
    if since is not None:
        stmt = stmt.where(col.observed_at >= since)
    if newest is None:
        stmt = stmt.order_by(col.observed_at, col.id)
    else:
        stmt = stmt.order_by(col.observed_at.desc(), col.id.desc()).limit(newest)
    with translate(f"cannot read history of {symbol} {metric}"):
        async with db.connect() as conn:
            points = [build_row(HistoryPoint, r) for r in await conn.execute(stmt)]
    return points if newest is None else points[::-1]


async def export_rows(
    db: AsyncEngine, *, since: datetime | None = None
) -> AsyncIterator[ObservationRow]:
    """Every stored observation (collected since `since`), streamed in collection order."""
    stmt: Select[Any] = select(*columns(observations, ObservationRow))
    if since is not None:
        stmt = stmt.where(observations.c.collected_at >= since)
    stmt = stmt.order_by(observations.c.collected_at, observations.c.id)
    with translate("cannot export observations"):
        async with db.connect() as conn:
            result = await conn.stream(stmt)
            async for row in result:
                yield build_row(ObservationRow, row)


def columns(table: Any, record: type[Any]) -> list[Any]:
    """The columns of `table` named as the fields of the dataclass `record`."""
    return [table.c[name] for name in record.__dataclass_fields__]


async def why_no_history(db: AsyncEngine, symbol: str, metric: str) -> str | None:
    """Why `history(symbol, metric)` is empty, if the coin or the metric is unknown: a one-line
    reason naming the known metrics; None when both exist (just nothing in that period)."""
    stored = await latest_values(db, [symbol.upper()])
    if not stored:
        return f"no observations of coin {symbol.upper()!r} are stored (see `coinharvest latest`)"
    metrics = sorted({v.metric for v in stored})
    if metric not in metrics:
        return f"{symbol.upper()} has no metric {metric!r} (known: {', '.join(metrics)})"
    return None
