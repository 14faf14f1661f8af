"""A metric's history thinned to at most N points for a chart, computed in SQL.

``[since, until)`` is cut into equal time buckets of ``bucket_s`` whole seconds, the
fewest that give at most `max_points` buckets; each bucket with data gives its **last**
point (newest ``observed_at``, ties: the row written last), with its time, source and run.
Why the last value and not a min/max pair: the series are sampled values (prices, heights,
supplies), and the last sample of a bucket is a point the series really had at that time,
so the line drawn through them is the series as a coarser collector would have seen it;
min/max pairs would draw two points per bucket at invented times. A spike shorter than a
bucket can be missed: ask for more points or a shorter period to see it.

The database does the work: one range scan of ``ix_observations_symbol_metric_observed_at``
in time order and a window (``lead(bucket) OVER (ORDER BY observed_at, id)``: a row is kept
when the next is in another bucket), on SQLite and PostgreSQL alike, no sort; only the kept
points reach Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, cast, extract, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.storage.failures import translate
from coinharvest.storage.queries import HistoryPoint, build_row, columns
from coinharvest.storage.schema import observations

__all__ = ["Downsampled", "bucket_seconds", "downsample"]


@dataclass(frozen=True, slots=True)
class Downsampled:
    """The kept points, oldest first; `downsampled`: some bucket held more than one point
    (False: `points` are every stored point of the period)."""

    points: list[HistoryPoint]
    bucket_s: int
    downsampled: bool


def bucket_seconds(since: datetime, until: datetime, max_points: int) -> int:
    """Whole seconds per bucket so that ``[since, until)`` makes at most `max_points`."""
    span = math.ceil(until.timestamp()) - math.floor(since.timestamp())
    return max(1, math.ceil(span / max_points))


def _epoch_seconds(dialect: str) -> Any:
    """Whole seconds since 1970 of ``observed_at``, as SQL (naive UTC text on SQLite)."""
    col = observations.c.observed_at
    if dialect == "sqlite":
        return cast(func.strftime("%s", col), Integer)
    return cast(func.floor(extract("epoch", col)), BigInteger)


def _last_per_bucket(series: Any, bucket: Any, since: datetime, until: datetime) -> Any:
    """The last row of each bucket of `series` in ``[since, until)``, oldest first, with
    ``rn``: its position among all the rows. One pass in index order: a row is the last of
    its bucket when the next row (``lead``) is in another bucket or there is none."""
    col = observations.c
    order = (col.observed_at, col.id)
    inner = (
        select(
            *columns(observations, HistoryPoint),
            col.id,
            bucket.label("b"),
            func.lead(bucket).over(order_by=order).label("next_b"),
            func.row_number().over(order_by=order).label("rn"),
        )
        .where(*series, col.observed_at >= since, col.observed_at < until)
        .subquery()
    )
    last = or_(inner.c.next_b.is_(None), inner.c.next_b != inner.c.b)
    return select(inner).where(last).order_by(inner.c.observed_at, inner.c.id)


async def downsample(
    db: AsyncEngine,
    symbol: str,
    metric: str,
    *,
    since: datetime | None,
    until: datetime,
    max_points: int,
) -> Downsampled:
    """At most `max_points` points of `metric` of `symbol` in ``[since, until)`` (see the
    module docstring). `since` None: from the first stored point.

    :raises StoreError: the database failed.
    """
    symbol, col = symbol.upper(), observations.c
    series = (col.symbol == symbol, col.metric == metric)
    with translate(f"cannot read history of {symbol} {metric}"):
        async with db.connect() as conn:
            if since is None:
                first = select(func.min(col.observed_at)).where(*series)
                since = (await conn.execute(first)).scalar()
                if since is None:
                    return Downsampled([], 1, False)
            bucket_s = bucket_seconds(since, until, max_points)
            start = math.floor(since.timestamp())
            epoch = _epoch_seconds(db.dialect.name) - literal(start, BigInteger)
            bucket = epoch // literal(bucket_s, BigInteger)
            stmt = _last_per_bucket(series, bucket, since, until)
            rows = list(await conn.execute(stmt))
    points = [build_row(HistoryPoint, r) for r in rows]
    # the last row kept is the last row of the period: its position is the count of rows
    return Downsampled(points, bucket_s, bool(rows) and rows[-1].rn > len(rows))
