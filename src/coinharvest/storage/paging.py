"""Keyset pages of a metric's history (oldest first) and of the runs (newest first).

A page is at most `limit` rows after a cursor; no OFFSET: the cursor holds the sort key of
the last row sent and the next page starts strictly after it, so every row appears exactly
once across pages even while new rows arrive.

- history: sort key ``(observed_at, id)``; the range scan reads
  ``ix_observations_symbol_metric_observed_at`` (on SQLite the index ends with the rowid,
  which is ``id``; on PostgreSQL ``id`` breaks ties among equal times after the range scan).
- runs: sort key ``(started_at, run_id)`` descending, on ``ix_runs_started_at``.

Cursors are opaque to clients: ``base64url(key) "." check``, where ``check`` is a digest of
the key and of what the page is of (coin and metric, or "runs"). A cursor that was altered
or belongs to another series is refused with `ConfigError` (one line; the API's 422).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.errors import ConfigError
from coinharvest.storage.failures import translate
from coinharvest.storage.queries import HistoryPoint, RunRow, build_row, columns
from coinharvest.storage.schema import observations, runs

__all__ = ["Page", "decode_cursor", "encode_cursor", "history_page", "runs_page"]

T = TypeVar("T")
_SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Rows of one page; `next_cursor` is None when there are no more."""

    rows: list[T]
    next_cursor: str | None


def _check(scope: str, key: str) -> str:
    return hashlib.sha256(f"{scope}{_SEP}{key}".encode()).hexdigest()[:12]


def encode_cursor(scope: str, at: datetime, tie: str) -> str:
    """The cursor after the row with sort key ``(at, tie)`` in the series `scope`."""
    key = f"{at.astimezone(UTC).isoformat()}{_SEP}{tie}"
    body = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return f"{body}.{_check(scope, key)}"


def decode_cursor(scope: str, cursor: str) -> tuple[datetime, str]:
    """``(at, tie)`` of a cursor of `encode_cursor` for `scope`.

    :raises ConfigError: a cursor not made by `encode_cursor` for this `scope`.
    """
    refused = ConfigError(
        f"cursor {cursor[:40]!r} is not valid here: pass next_cursor of the previous page "
        "of the same query unchanged"
    )
    body, _, check = cursor.partition(".")
    try:
        key = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        at_text, tie = key.split(_SEP)
        at = datetime.fromisoformat(at_text)
    except (ValueError, UnicodeDecodeError):
        raise refused from None
    if check != _check(scope, key) or at.tzinfo is None:
        raise refused
    return at, tie


async def history_page(
    db: AsyncEngine,
    symbol: str,
    metric: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
    cursor: str | None = None,
) -> Page[HistoryPoint]:
    """At most `limit` values of `metric` of `symbol` observed in ``[since, until)``, oldest
    first, after `cursor` (a `next_cursor` of the same symbol and metric).

    :raises ConfigError: a bad cursor. :raises StoreError: the database failed.
    """
    symbol, col = symbol.upper(), observations.c
    scope = f"history{_SEP}{symbol}{_SEP}{metric}"
    stmt = select(*columns(observations, HistoryPoint), col.id)
    stmt = stmt.where(col.symbol == symbol, col.metric == metric)
    if since is not None:
        stmt = stmt.where(col.observed_at >= since)
    if until is not None:
        stmt = stmt.where(col.observed_at < until)
    if cursor is not None:
        at, tie = decode_cursor(scope, cursor)
        if not tie.isdigit():
            raise ConfigError(f"cursor {cursor[:40]!r} is not valid here: not a history cursor")
        after = or_(col.observed_at > at, and_(col.observed_at == at, col.id > int(tie)))
        stmt = stmt.where(col.observed_at >= at, after)
    stmt = stmt.order_by(col.observed_at, col.id).limit(limit + 1)
    with translate(f"cannot read history of {symbol} {metric}"):
        async with db.connect() as conn:
            found = list(await conn.execute(stmt))
    more, found = len(found) > limit, found[:limit]
    last = found[-1] if more else None
    next_cursor = encode_cursor(scope, last.observed_at, str(last.id)) if last else None
    return Page([build_row(HistoryPoint, r) for r in found], next_cursor)


async def runs_page(db: AsyncEngine, *, limit: int = 20, cursor: str | None = None) -> Page[RunRow]:
    """At most `limit` runs, newest first, after `cursor` (a `next_cursor` of this query).

    :raises ConfigError: a bad cursor. :raises StoreError: the database failed.
    """
    col = runs.c
    stmt = select(*columns(runs, RunRow))
    if cursor is not None:
        at, run_id = decode_cursor("runs", cursor)
        before = or_(col.started_at < at, and_(col.started_at == at, col.run_id < run_id))
        stmt = stmt.where(col.started_at <= at, before)
    stmt = stmt.order_by(col.started_at.desc(), col.run_id.desc()).limit(limit + 1)
    with translate("cannot read runs"):
        async with db.connect() as conn:
            found = [build_row(RunRow, r) for r in await conn.execute(stmt)]
    more, found = len(found) > limit, found[:limit]
    last = found[-1] if more else None
    return Page(found, encode_cursor("runs", last.started_at, last.run_id) if last else None)
