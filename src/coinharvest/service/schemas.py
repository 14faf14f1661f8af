"""The shapes of the HTTP API in its OpenAPI document: path and query parameters (with the
patterns that validate them) and the response models. The routes are in `api`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, StringConstraints

from coinharvest.service.metrics import CircuitState
from coinharvest.storage.queries import CoinRow, HistoryPoint, JobRow, LatestValue, RunRow

__all__ = [
    "AGE_PATTERN",
    "BearerToken",
    "CoinOut",
    "CoinsOut",
    "Cursor",
    "ErrorOut",
    "Health",
    "HistoryOut",
    "LatestOut",
    "LimitsOut",
    "LimitsResetOut",
    "ReplicaLeaderOut",
    "ReplicaOut",
    "Replication",
    "RunDetailOut",
    "RunId",
    "RunStarted",
    "RunsOut",
    "SchedulerState",
    "Since",
    "SourceLimitOut",
    "SourceName",
    "Symbol",
    "SymbolItem",
]

SYMBOL_PATTERN = r"^[A-Za-z0-9._-]{1,32}$"
Symbol = Annotated[str, PathParam(pattern=SYMBOL_PATTERN, description="e.g. BTC")]
SourceName = Annotated[
    str, PathParam(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="e.g. coingecko")
]
RunId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="id or prefix")]
#: What ``?since=`` takes (`parse_since`): an age or an ISO date or date-time. Its syntax is
#: checked by `SINCE_PATTERN` (then `parse_since` may still refuse, e.g. ``1000000d`` or
#: month 13: a 422 too); the OpenAPI document shows `SINCE_SCHEMA`, the forms that always
#: work: an age in `AGE_PATTERN` (at most ~270 years), an RFC 3339 date or date-time.
AGE_PATTERN = r"^(\d{1,5}(\.\d{1,6})?d|\d{1,6}(\.\d{1,6})?h|\d{1,7}(\.\d{1,6})?m)$"
SINCE_PATTERN = (
    r"^(\d{1,9}(\.\d{1,6})?[dhm]"
    r"|\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?)?)$"
)
SINCE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": AGE_PATTERN, "description": "age: 7d, 12h, 30m"},
        {"type": "string", "format": "date"},
        {"type": "string", "format": "date-time"},
    ]
}
Since = Annotated[
    str | None,
    Query(
        max_length=40,
        pattern=SINCE_PATTERN,
        description="An age (7d, 12h, 30m: digits and d, h or m) or an ISO 8601 date or "
        "date-time (2026-11-01, 2026-11-01T10:00Z; UTC unless an offset is given). "
        "An age reaching before year 1 is a 422.",
        json_schema_extra=SINCE_SCHEMA,
    ),
]
SymbolItem = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN)]
#: ``?cursor=``: the ``next_cursor`` of the previous page, unchanged (opaque).
Cursor = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[A-Za-z0-9_.=-]{1,200}$",
        description="next_cursor of the previous page of the same query, unchanged.",
    ),
]
#: ``POST /api/runs``'s token, declared in the OpenAPI document as an HTTP bearer scheme; None
#: when missing or not "Bearer" (the route answers its own 401).
BearerToken = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(
        HTTPBearer(
            auto_error=False,
            description="COINHARVEST_API_TOKEN, sent as `Authorization: Bearer <token>`",
        )
    ),
]
SchedulerState = Literal["starting", "running", "idle", "stopping", "dead", "not running"]


class ReplicaOut(BaseModel):
    """One row of the ``replicas`` table, judged at the database's clock."""

    replica_id: str = Field(description="host:pid:random, unique per process.")
    host: str
    pid: int
    http_url: str | None = Field(description="Its HTTP API; null: it serves none.")
    started_at: datetime = Field(description="When the process started (database clock).")
    heartbeat_at: datetime = Field(description="Its last leadership check (database clock).")
    heartbeat_age_s: float = Field(description="Seconds since then (>= 0).")
    leader_since: datetime | None = Field(
        description="Since when it says it leads; null: "
        "it follows (a stale replica's mark may be a crashed leader's)."
    )
    stale: bool = Field(description="No heartbeat for over stale_after_s: dead or cut off.")


class ReplicaLeaderOut(BaseModel):
    replica_id: str
    host: str
    since: datetime


class Replication(BaseModel):
    """Who runs the scheduled ticks (`coinharvest.storage.replica_queries` has the rules)."""

    mode: Literal["single", "replicas"] = Field(
        default="single",
        description="replicas: this process takes part in a leader election, or (serve) the "
        "database has replicas with a fresh heartbeat; single: one process, its own leader.",
    )
    replica_id: str | None = Field(default=None, description="This process; null: single.")
    role: Literal["leader", "follower"] | None = Field(
        default=None, description="This process's own view; null: not in an election."
    )
    leader: ReplicaLeaderOut | None = Field(
        default=None,
        description="The non-stale replica with the newest leader_since; null: none leads.",
    )
    stale_after_s: float | None = Field(
        default=None, description="Heartbeat age beyond which a replica is stale."
    )
    replicas: list[ReplicaOut] = Field(default_factory=list)


class Health(BaseModel):
    """``status`` is ``ok`` (HTTP 200) or ``unhealthy`` (HTTP 503).

    ``scheduler``: ``starting``; ``running`` (a run is going); ``idle`` (waiting for the next
    tick); ``stopping`` (after SIGINT/SIGTERM); ``dead`` (the loop ended by an error: 503);
    ``not running`` (``coinharvest serve``, no scheduler: fine).
    """

    status: Literal["ok", "unhealthy"]
    version: str
    scheduler: SchedulerState
    scheduler_alive: bool
    database: Literal["reachable", "unreachable"]
    database_error: str | None = None
    last_run: RunRow | None = None
    ticks: int | None = None
    skipped_ticks: int | None = None
    sources: dict[str, CircuitState] = Field(
        default_factory=dict,
        description="Each source's circuit breaker: closed (in use), open (its connections "
        "keep failing: nothing is sent until a probe), half_open (probing).",
    )
    replication: Replication = Field(default_factory=Replication)


class CoinOut(BaseModel):
    """A configured coin: its id per source and its fallback chains."""

    symbol: str
    name: str
    priority: int
    ids: dict[str, str]
    chains: list[list[str]]


class CoinsOut(BaseModel):
    coins: list[CoinOut]


class LatestOut(BaseModel):
    values: list[LatestValue]


class HistoryOut(BaseModel):
    """Points oldest first: a page (``next_cursor``) or, with ``max_points``, downsampled."""

    symbol: str
    metric: str
    points: list[HistoryPoint]
    next_cursor: str | None = Field(
        default=None, description="Pass as cursor for the next page; null: no more points."
    )
    downsampled: bool = Field(
        default=False,
        description="true: some time bucket held several points and only its last is given.",
    )
    bucket_s: int | None = Field(
        default=None, description="Seconds per time bucket with max_points; null without."
    )


class RunsOut(BaseModel):
    runs: list[RunRow]
    next_cursor: str | None = Field(
        default=None, description="Pass as cursor for older runs; null: no more runs."
    )


class RunDetailOut(BaseModel):
    run: RunRow
    coins: list[CoinRow]
    jobs: list[JobRow]


class RunStarted(BaseModel):
    run_id: str | None
    status: Literal["started"]
    href: str | None


class ErrorOut(BaseModel):
    error: str
    status: int


class SourceLimitOut(BaseModel):
    """One source's limits (``engine.adaptive.LimitView``); ``null``: no such limit or unknown.

    ``concurrency`` and ``rate_per_minute`` are in force (learned, or the ceilings);
    ``max_*`` are the configured ceilings, never exceeded.
    """

    source: str
    adaptive: bool = Field(description="Whether limits are learned (ADAPTIVE_LIMITS).")
    concurrency: int = Field(description="In-flight limit in force.")
    max_concurrency: int = Field(description="Configured most in flight (the ceiling).")
    rate_per_minute: float | None = Field(description="Start rate in force; null: unlimited.")
    max_rate_per_minute: float | None = Field(
        description="Configured start rate (the ceiling); null: no rate limit."
    )
    ceiling_per_minute: float | None = Field(
        description="Rate at which the upstream last refused (429) or that its "
        "x-ratelimit-limit announced; null: never."
    )
    quota_used_day: int | None = Field(description="Requests this UTC day; null: no quota.")
    quota_used_month: int | None = Field(description="Requests this UTC month; null: no quota.")
    quota_today: int | None = Field(
        description="Today's allowance (the daily quota, or today's share of the month)."
    )
    quota_per_month: int | None = Field(description="Monthly quota; null: none.")


class LimitsOut(BaseModel):
    live: bool = Field(
        description="true: the running engine's limits now; false: what the next run starts "
        "from (learned limits stored in the database)."
    )
    sources: list[SourceLimitOut]


class LimitsResetOut(BaseModel):
    source: str | None = Field(description="The source reset; null: every source.")
    forgotten: int = Field(description="Learned limits deleted from the database.")
    engine_reset: bool = Field(
        description="Whether this service's running engine also started again from the "
        "configured limits."
    )
    message: str
