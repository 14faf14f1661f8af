"""The ``replication`` part of ``/health``: this process's role and the ``replicas`` table.

The rules (stale, the leader) are `coinharvest.storage.replica_queries`'; here they become the
response model. Reading the table never makes ``/health`` unhealthy: a database that cannot
be read is already reported by the probe, and a database without the table (not migrated to
revision 0006, e.g. under ``coinharvest serve`` of an older file) simply has no replicas.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.errors import StoreError
from coinharvest.service.schemas import ReplicaLeaderOut, ReplicaOut, Replication
from coinharvest.storage.replica_queries import (
    ReplicaState,
    ReplicaView,
    replica_snapshot,
    replica_view,
)

__all__ = ["replication"]


async def replication(
    db: AsyncEngine | None,
    *,
    replica_id: str | None,
    is_leader: Callable[[], bool] | None,
    check_s: float,
) -> Replication:
    """The ``replication`` object of ``/health``.

    :param db: where to read ``replicas``; None: do not read (the database is unreachable).
    :param is_leader: this process's election (None: it takes part in none).
    :param check_s: the leadership check interval (LEADER_CHECK_SECONDS), for staleness.

    ``mode`` is ``replicas`` when this process is in an election, or when the table has a
    replica with a fresh heartbeat (``coinharvest serve`` beside replicas); else ``single``.
    """
    view = await _view(db, check_s)
    in_election = is_leader is not None
    mode = "replicas" if in_election or (view is not None and view.live > 0) else "single"
    role = None if is_leader is None else ("leader" if is_leader() else "follower")
    return Replication(
        mode=mode,
        replica_id=replica_id,
        role=role,
        leader=_leader(view.leader) if view is not None and view.leader is not None else None,
        stale_after_s=view.stale_after_s if view is not None else None,
        replicas=[_replica(s) for s in view.replicas] if view is not None else [],
    )


async def _view(db: AsyncEngine | None, check_s: float) -> ReplicaView | None:
    if db is None:
        return None
    try:
        snapshot = await replica_snapshot(db)
    except StoreError:  # module docstring: never a reason for a 503 by itself
        return None
    return replica_view(snapshot.rows, snapshot.now, check_s)


def _leader(state: ReplicaState) -> ReplicaLeaderOut:
    assert state.row.leader_since is not None  # only a row with leader_since leads
    return ReplicaLeaderOut(
        replica_id=state.row.replica_id, host=state.row.host, since=state.row.leader_since
    )


def _replica(state: ReplicaState) -> ReplicaOut:
    row = state.row
    return ReplicaOut(
        replica_id=row.replica_id,
        host=row.host,
        pid=row.pid,
        http_url=row.http_url,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        heartbeat_age_s=round(state.heartbeat_age_s, 3),
        leader_since=row.leader_since,
        stale=state.stale,
    )
