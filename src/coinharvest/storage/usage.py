"""Requests sent since a time, per source: how much of a daily or monthly quota is used.

A request is a job attempt that started: a ``job_events`` row with ``started_s`` set (a
deferred attempt never started), of any run, written by any process sharing the database.
It started at its run's ``started_at`` plus ``started_s`` seconds; `count_requests` counts
those at or after `since`, to the microsecond on both backends.

Cost: it range-scans ``ix_runs_started_at`` for runs started at most `MAX_RUN_SPAN` before
`since`, skips those that finished before it, and reads only those runs' attempts, from the
covering index ``ix_job_events_run_id_source_started_s`` (revision 0004). So its work grows
with the runs since the boundary, not with all of history (PostgreSQL may still prefer one
sequential scan when those runs are most of what is stored); the exact time test is only
paid for the runs that straddle `since`.

What it cannot see:

- attempts not stored yet: the `Store` writes a job's attempts with the coins they concern
  and with the run's end, so a run still going in another process shows only its
  completed coins' attempts (a run that crashed shows what it stored);
- attempts of a run started more than `MAX_RUN_SPAN` before `since`: no configured run lasts
  that long (its deadline is at most 90 % of the longest collection interval, 7 days), but
  an `Engine.run` without a deadline could.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Select, String, and_, cast, extract, func, literal, or_, select
from sqlalchemy import type_coerce as as_type
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from coinharvest.storage.failures import translate
from coinharvest.storage.schema import UTCDateTime, job_events, runs

__all__ = ["MAX_RUN_SPAN", "count_requests", "requests_query", "requests_since"]

#: The longest a run may last: its attempts all start within this of its ``started_at``.
MAX_RUN_SPAN = timedelta(days=7)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def requests_query(dialect: str, since: datetime) -> Select[Any]:
    """The statement behind `count_requests`: rows of (source, requests) for `dialect`
    (``"sqlite"`` or ``"postgresql"``). Exposed so its plan can be checked with EXPLAIN.

    :raises ValueError: `since` is naive.
    """
    if since.tzinfo is None:
        raise ValueError(f"naive datetime {since!r}: coinharvest counts in aware UTC times")
    return (
        select(job_events.c.source, func.count().label("requests"))
        .select_from(runs.join(job_events, job_events.c.run_id == runs.c.run_id))
        .where(
            runs.c.started_at >= since - MAX_RUN_SPAN,
            # A run that finished before `since` started every attempt before it too.
            or_(runs.c.finished_at.is_(None), runs.c.finished_at >= since),
            job_events.c.started_s.is_not(None),
            or_(
                # A run started at or after `since`: every attempt it started counts. Said
                # first so the exact test below (costly per row) is left to straddling runs.
                and_(runs.c.started_at >= since, job_events.c.started_s >= 0),
                job_events.c.started_s >= _seconds_from_run_start(dialect, since),
            ),
        )
        .group_by(job_events.c.source)
    )


def _seconds_from_run_start(dialect: str, since: datetime) -> ColumnElement[Any]:
    """Seconds from each run's ``started_at`` to `since` (negative for later runs).

    PostgreSQL subtracts the timestamps (an exact interval). SQLite keeps ``started_at`` as
    naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``: whole seconds (``strftime('%s')``) and
    microseconds are taken apart, so the difference is exact where ``julianday`` would
    round to milliseconds and lose more to floating point.
    """
    if dialect == "postgresql":
        return extract("epoch", literal(since, UTCDateTime()) - runs.c.started_at)
    stamp = as_type(runs.c.started_at, String)
    whole = cast(func.strftime("%s", func.substr(stamp, 1, 19)), Integer)
    # Padding makes a shorter (or missing) fraction read right: ".5" is 500000 µs.
    micro = cast(func.substr(stamp + "000000", 21, 6), Integer)
    delta = since - _EPOCH
    since_whole = delta.days * 86_400 + delta.seconds
    return (since_whole - whole) + (delta.microseconds - micro) / 1_000_000.0


async def count_requests(conn: AsyncConnection, since: datetime) -> dict[str, int]:
    """Per source, the requests (started job attempts) that started at or after `since`.

    Sources without any are absent. `since` must be timezone-aware (ValueError if not).
    """
    rows = await conn.execute(requests_query(conn.dialect.name, since))
    return {row.source: int(row.requests) for row in rows}


async def requests_since(db: AsyncEngine, since: datetime) -> dict[str, int]:
    """`count_requests` on a connection of its own, for read-only commands.

    :raises StoreError: the database could not be read (one line).
    """
    with translate(f"cannot count requests since {since.isoformat()}"):
        async with db.connect() as conn:
            return await count_requests(conn, since)
