"""The database schema: nine tables, SQLAlchemy Core, portable across SQLite and PostgreSQL.

::

    runs            one row per run; written at start (status ``running``), totals at the end
    coin_results    one row per (run, coin); written with the coin's observations, in one
                    transaction, the moment the coin completes
    observations    one row per (run, coin, source, metric); the values themselves
    job_events      one row per (run, job, attempt): the per-source request timeline
    learned_limits  one row per (source, API key fingerprint): what the adaptive limit
                    controller learned, kept across runs (revision 0004)
    latest_observations  one row per (coin, metric): its newest observation, written with
                    the observations in the same transaction (revision 0005)
    replicas        one row per ``coinharvest run`` process on the database: heartbeat, and
                    since when it leads (revision 0006, `coinharvest.service.leadership`)
    schedule_ticks  one row per scheduled tick claimed by a leader: the fence that keeps a
                    tick from running twice (revision 0006)
    run_requests    one row per ``POST /api/runs`` made on a replica that did not lead: the
                    leader claims it and runs it (revision 0006)

Keys make every write idempotent: a retried write hits the same primary/unique key and is
ignored or updated instead of duplicated. Timestamps are timezone-aware UTC in Python on
both backends (`UTCDateTime`).

The two hot reads: "latest value per coin and metric" reads ``latest_observations`` (its
primary key, no scan of the observations), "history of one metric" range-scans
``ix_observations_symbol_metric_observed_at`` by ``observed_at``; ``ix_runs_started_at``
serves the runs list and, with ``ix_job_events_run_id_source_started_s`` (covering), the
count of requests sent since a time (`coinharvest.storage.usage`).

This module is the *current* shape; the migrations in ``migrations/versions`` build it, and a
test checks that a migrated database matches `metadata`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "UTCDateTime",
    "coin_results",
    "job_events",
    "latest_observations",
    "learned_limits",
    "metadata",
    "observations",
    "replicas",
    "run_requests",
    "runs",
    "schedule_ticks",
]

#: Constraint names are fixed so migrations can refer to them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: No value bound yet (`UTCDateTime.bind_processor`).
_UNSET = object()

#: A 64-bit autoincrement key on PostgreSQL, SQLite's rowid alias on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; ``timestamptz`` on PostgreSQL, naive UTC text on SQLite.

    Binding a naive datetime is refused (ValueError): every time in coinharvest is aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: coinharvest stores aware UTC times")
        value = value.astimezone(UTC)
        # SQLite has no time zones: store naive UTC so text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """SQLAlchemy's processor (`process_bind_param`, then the dialect's own: the text
        SQLite stores), remembering its last value: a batch binds the same datetime object
        in row after row (a coin's ``observed_at``, the batch's ``collected_at``), and
        converting it was the costliest part of binding a row."""
        process = super().bind_processor(dialect)
        if process is None:
            return None
        last: tuple[Any, Any] = (_UNSET, None)

        def memoised(value: Any) -> Any:
            nonlocal last
            seen = last  # one tuple, read and replaced whole
            if value is seen[0]:  # the same immutable object: the same result
                return seen[1]
            bound = process(value)
            last = (value, bound)
            return bound

        return memoised

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("trigger", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("duration_s", Float),
    Column("coins_total", Integer, nullable=False),
    Column("coins_ok", Integer, nullable=False, default=0),
    Column("coins_failed", Integer, nullable=False, default=0),
    Column("coins_deferred", Integer, nullable=False, default=0),
    Column("requests", Integer, nullable=False, default=0),
    Column("rate_limited", Integer, nullable=False, default=0),
    Column("retries", Integer, nullable=False, default=0),
    Column("max_in_flight", Integer, nullable=False, default=0),
    Column("store_errors", Integer, nullable=False, default=0),
    #: Coins of this run that could not be written (revision 0002), 0 when all were.
    Column("coins_unsaved", Integer, nullable=False, default=0, server_default=text("0")),
    Column("error", Text),
    #: ``host:pid`` of the process that wrote the run: recovery interrupts only dead owners.
    Column("owner", String(255)),
    Index(None, "started_at"),
)

coin_results = Table(
    "coin_results",
    metadata,
    Column("run_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("name", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("duration_s", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    #: Sources that answered for this coin, comma-separated in the order asked.
    Column("sources", Text, nullable=False),
    Column("error", Text),
    #: Metrics the sources could not give for this coin, and why (revision 0003).
    Column("notes", Text),
    #: How many observations were written with this row: "stored whole" is checkable.
    Column("observation_count", Integer, nullable=False),
    Column("stored_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("run_id", "symbol"),
    ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
    Index(None, "symbol", "run_id"),
)

observations = Table(
    "observations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("source", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("value", Float),
    Column("observed_at", UTCDateTime(), nullable=False),
    Column("collected_at", UTCDateTime(), nullable=False),
    Column("confidence", String(8), nullable=False),
    Column("estimated", Boolean, nullable=False, default=False),
    UniqueConstraint("run_id", "symbol", "source", "metric"),
    ForeignKeyConstraint(
        ["run_id", "symbol"], ["coin_results.run_id", "coin_results.symbol"], ondelete="CASCADE"
    ),
    # The history of one metric (and the backfill of latest_observations) reads this index.
    Index(None, "symbol", "metric", "observed_at"),
    # Export --since (revision 0002).
    Index(None, "collected_at"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("run_id", String(64), nullable=False),
    Column("job_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("source", String(64), nullable=False),
    #: Coins of the job, comma-separated.
    Column("symbols", Text, nullable=False),
    Column("queued_s", Float, nullable=False),
    Column("started_s", Float),
    Column("ended_s", Float),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    PrimaryKeyConstraint("run_id", "job_id", "attempt"),
    ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
    # Requests since a time (revision 0004): a run's attempts read from the index alone.
    Index(None, "run_id", "source", "started_s"),
)

learned_limits = Table(
    "learned_limits",
    metadata,
    Column("source", String(64), nullable=False),
    #: Fingerprint of the API key the limits were learned with; "" without a key.
    Column("key_id", String(128), nullable=False),
    Column("concurrency", Float, nullable=False),
    Column("rate_per_minute", Float, nullable=False),
    #: The rate the upstream last refused (429) or announced; NULL when it never did.
    Column("ceiling_per_minute", Float),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("source", "key_id"),
)

latest_observations = Table(
    "latest_observations",
    metadata,
    Column("symbol", String(32), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("value", Float),
    Column("source", String(64), nullable=False),
    Column("confidence", String(8), nullable=False),
    Column("estimated", Boolean, nullable=False),
    Column("observed_at", UTCDateTime(), nullable=False),
    Column("run_id", String(64), nullable=False),
    # The newest observation of the pair (ties: the one written last), upserted by
    # `writes.write_coins` in the transaction that writes the observations. No foreign key:
    # observations are never deleted (nothing in coinharvest deletes runs, coins or
    # observations); code that ever does must recompute the rows of the pairs it touches.
    PrimaryKeyConstraint("symbol", "metric"),
)

replicas = Table(
    "replicas",
    metadata,
    #: ``host:pid:random``: unique per process, also across restarts with a reused pid.
    Column("replica_id", String(128), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    #: The replica's HTTP API (None: none), for operators reading /health.
    Column("http_url", String(255)),
    Column("started_at", UTCDateTime(), nullable=False),
    #: Written at every leadership check on the database's clock.
    Column("heartbeat_at", UTCDateTime(), nullable=False),
    #: Since when this replica leads (database clock); NULL while it follows.
    Column("leader_since", UTCDateTime()),
    PrimaryKeyConstraint("replica_id"),
    Index(None, "heartbeat_at"),
)

schedule_ticks = Table(
    "schedule_ticks",
    metadata,
    #: The tick length in milliseconds: tick numbers count from the epoch in this unit, so
    #: a changed COLLECTION_INTERVAL_MINUTES starts a new series instead of colliding.
    Column("interval_ms", BigInteger, nullable=False),
    #: floor(database epoch time / interval), the tick's identity on every replica.
    Column("tick", BigInteger, nullable=False),
    Column("replica_id", String(128), nullable=False),
    Column("run_id", String(64), nullable=False),
    #: The database's clock when the tick was claimed.
    Column("claimed_at", UTCDateTime(), nullable=False),
    #: Seconds the claim came after the tick was due (database clock): how late it ran.
    Column("late_s", Float, nullable=False),
    PrimaryKeyConstraint("interval_ms", "tick"),
    UniqueConstraint("run_id"),
)

run_requests = Table(
    "run_requests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", UTCDateTime(), nullable=False),
    #: Set by the leader that claimed the request (NULL: waiting).
    Column("claimed_by", String(128)),
    Column("run_id", String(64)),
    Index(None, "claimed_by"),
)
