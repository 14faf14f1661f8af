"""``GET /api/history/{symbol}``: one metric's values, paged or downsampled for a chart.

::

    ?metric=price_usd          the metric (default price_usd)
    &since=7d|ISO  &until=...  the period [since, until): an age or an ISO date/date-time
                               (what ``since`` always took); until defaults to now
    &limit=1000&cursor=...     paging, oldest first: at most `limit` (1..10000) points, then
                               ``next_cursor`` (null: no more) to pass as `cursor`
    &max_points=N              instead of paging: at most N (2..5000) points over the period,
                               the last of each time bucket of ``bucket_s`` seconds
                               (`coinharvest.storage.downsample`); ``next_cursor`` is null

A bad cursor (altered, or of another coin or metric) or `cursor` with `max_points` is a 422
naming the parameter. An unknown coin or metric with no points is a 404.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException

from coinharvest.errors import ConfigError
from coinharvest.models import Coin
from coinharvest.service.schemas import Cursor, HistoryOut, Since, Symbol
from coinharvest.storage import queries
from coinharvest.storage.downsample import downsample
from coinharvest.storage.paging import history_page
from coinharvest.timeparse import parse_since

__all__ = ["add_history_routes", "parse_time", "refuse"]

Coins = Callable[[], Sequence[Coin]]


def add_history_routes(app: FastAPI, db: AsyncEngine, coins: Coins) -> None:
    """Add ``GET /api/history/{symbol}`` over `db`; `coins`: the configured coins (404s)."""

    @app.get("/api/history/{symbol}", response_model=HistoryOut)
    async def history(
        symbol: Symbol,
        metric: Annotated[str, Query(pattern=r"^[a-z0-9_]{1,64}$")] = "price_usd",
        since: Since = None,
        until: Since = None,
        limit: Annotated[int, Query(ge=1, le=10000, description="Points per page.")] = 1000,
        cursor: Cursor = None,
        max_points: Annotated[
            int | None, Query(ge=2, le=5000, description="Downsample to at most N points.")
        ] = None,
    ) -> HistoryOut:
        """Values of `metric` of `symbol` in [since, until), oldest first: a page of at most
        `limit` (then `next_cursor`), or at most `max_points`, the last of each time bucket."""
        start, end = parse_time("since", since), parse_time("until", until)
        symbol = symbol.upper()
        if max_points is not None:
            if cursor is not None:
                raise refuse("cursor", "cursor cannot be combined with max_points")
            end = end or datetime.now(UTC)
            thin = await downsample(
                db, symbol, metric, since=start, until=end, max_points=max_points
            )
            out = HistoryOut(symbol=symbol, metric=metric, points=thin.points)
            out.downsampled, out.bucket_s = thin.downsampled, thin.bucket_s
        else:
            try:
                page = await history_page(
                    db, symbol, metric, since=start, until=end, limit=limit, cursor=cursor
                )
            except ConfigError as exc:
                raise refuse("cursor", str(exc)) from None
            out = HistoryOut(symbol=symbol, metric=metric, points=page.rows)
            out.next_cursor = page.next_cursor
        if not out.points:
            await _check_known(db, coins, symbol, metric)
        return out


def refuse(name: str, message: str) -> RequestValidationError:
    """A 422 for the query parameter `name` (one line)."""
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])


def parse_time(name: str, value: str | None) -> datetime | None:
    """`parse_since` of the query parameter `name`, in UTC; a bad value is a 422. A date-time
    whose offset takes it past the ends of the calendar (``0001-01-01T00:00+01:00``) means
    from the beginning / nothing."""
    if value is not None and value[4:5] == "-":
        value = value.upper()  # a date: RFC 3339 allows a lower-case "t" and "z"
    try:
        start = parse_since(value)
    except ConfigError as exc:
        raise refuse(name, str(exc)) from None
    if start is None:
        return None
    try:
        return start.astimezone(UTC)
    except OverflowError:
        return None if start.year == 1 else datetime.max.replace(tzinfo=UTC)


async def _check_known(db: AsyncEngine, coins: Coins, symbol: str, metric: str) -> None:
    """404 for a coin neither configured nor stored, or a metric it never had."""
    stored = await queries.latest_values(db, [symbol])
    if not stored and symbol not in {c.symbol.upper() for c in coins()}:
        raise HTTPException(404, f"unknown coin: {symbol}")
    metrics = sorted({v.metric for v in stored})
    if stored and metric not in metrics:
        raise HTTPException(404, f"{symbol} has no metric {metric!r} (known: {', '.join(metrics)})")
