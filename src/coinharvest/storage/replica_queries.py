"""Reading the ``replicas`` table for visibility (``/health``, the dashboard): who leads, since
when, and each replica's last heartbeat.

`replica_rows` and `replica_snapshot` read (plain SQLAlchemy Core, SQLite and PostgreSQL);
`replica_view` decides, purely from the rows, a ``now`` and the leadership check interval,
which replicas are stale and which one leads:

- **stale**: a replica whose heartbeat is older than `stale_after_s` (3 × the check interval
  + 2 s): three missed checks plus a margin for a slow database round trip. A live replica
  heartbeats at every check, so only a dead, hung or cut-off one goes stale.
- **the leader**: among the rows that are not stale, the one with the newest
  ``leader_since`` (ties: the greater ``replica_id``, only so the answer is deterministic).
  A crashed leader's row keeps its ``leader_since`` until a new leader clears it; it goes
  stale first, so it is never reported as the leader, and a new leader (newer
  ``leader_since``) wins over an old mark still within the staleness window.

``now`` is the database's clock (`replica_snapshot`): heartbeats are written on it too, so
ages do not depend on this machine's clock agreeing with the replicas' hosts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinharvest.storage.failures import translate
from coinharvest.storage.queries import build_row, columns
from coinharvest.storage.schema import UTCDateTime, replicas

__all__ = [
    "ReplicaRow",
    "ReplicaSnapshot",
    "ReplicaState",
    "ReplicaView",
    "replica_rows",
    "replica_snapshot",
    "replica_view",
    "stale_after_s",
]

#: Missed checks before a replica counts as stale, and the margin added (seconds).
STALE_CHECKS = 3
STALE_MARGIN_S = 2.0


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    """One row of ``replicas`` as stored (times aware UTC, on the database's clock)."""

    replica_id: str
    host: str
    pid: int
    http_url: str | None
    started_at: datetime
    heartbeat_at: datetime
    leader_since: datetime | None


@dataclass(frozen=True, slots=True)
class ReplicaSnapshot:
    """The rows and the database's clock, read on one connection."""

    now: datetime
    rows: list[ReplicaRow]


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """A replica as judged at one ``now``: its heartbeat's age (≥ 0 s) and whether stale."""

    row: ReplicaRow
    heartbeat_age_s: float
    stale: bool


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """Every replica (by start time, then id) and the leader (None: no live replica leads)."""

    now: datetime
    stale_after_s: float
    replicas: list[ReplicaState]
    leader: ReplicaState | None

    @property
    def live(self) -> int:
        """How many replicas are not stale."""
        return sum(not r.stale for r in self.replicas)


def stale_after_s(check_s: float) -> float:
    """Heartbeat age beyond which a replica is stale, for a check interval of `check_s`."""
    return STALE_CHECKS * check_s + STALE_MARGIN_S


def replica_view(rows: Sequence[ReplicaRow], now: datetime, check_s: float) -> ReplicaView:
    """Judge `rows` at `now` (aware) with checks every `check_s` seconds (module docstring:
    stale, the leader). Pure: no clock, no database."""
    limit = stale_after_s(check_s)
    states = []
    for row in sorted(rows, key=lambda r: (r.started_at, r.replica_id)):
        # A heartbeat committed after `now` was read is a few ms "in the future": age 0.
        age = max(0.0, (now - row.heartbeat_at).total_seconds())
        states.append(ReplicaState(row, age, age > limit))
    leading = [s for s in states if not s.stale and s.row.leader_since is not None]
    leader = max(leading, key=lambda s: (s.row.leader_since, s.row.replica_id), default=None)
    return ReplicaView(now, limit, states, leader)


async def replica_rows(db: AsyncEngine) -> list[ReplicaRow]:
    """Every row of ``replicas`` (unordered). :raises StoreError: the database failed."""
    return (await replica_snapshot(db)).rows


async def replica_snapshot(db: AsyncEngine) -> ReplicaSnapshot:
    """The rows of ``replicas`` and the database's clock, on one connection.

    :raises StoreError: the database failed (also when the table is missing: a database
        not migrated to revision 0006).
    """
    with translate("cannot read replicas"):
        async with db.connect() as conn:
            now = await database_now(conn)
            result = await conn.execute(select(*columns(replicas, ReplicaRow)))
            rows = [build_row(ReplicaRow, r) for r in result]
    return ReplicaSnapshot(now, rows)


async def database_now(conn: AsyncConnection) -> datetime:
    """The database's clock, aware UTC (SQLite: the local clock, to the millisecond)."""
    if conn.dialect.name == "sqlite":
        # CURRENT_TIMESTAMP has whole seconds only; heartbeat ages want tenths.
        stamp = (await conn.execute(select(func.strftime("%Y-%m-%d %H:%M:%f", "now")))).scalar()
        return datetime.fromisoformat(str(stamp)).replace(tzinfo=UTC)
    clock = select(func.clock_timestamp(type_=UTCDateTime()))
    value = (await conn.execute(clock)).scalar()
    assert isinstance(value, datetime)
    return value
