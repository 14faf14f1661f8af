"""The statements replicas use on PostgreSQL: the leader lock, heartbeats, the tick fence and
forwarded run requests (`coinharvest.service.leadership`, `coinharvest.service.replicated`).

Every time here is the database's (``clock_timestamp()``), never a process's: replicas whose
clocks disagree still agree on who leads, which tick is due and how late it ran.

The leader lock is a session advisory lock (`LEADER_KEY`), so it is held exactly as long as
the leader's connection lives: when the process dies, the kernel closes its socket, the
server ends the session and the lock is free for the next replica's check. PostgreSQL only:
these statements do not exist on SQLite (one process per SQLite file).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "LEADER_KEY",
    "Check",
    "check_lock",
    "claim_request",
    "claim_tick",
    "depose_others",
    "heartbeat",
    "last_tick",
    "orphan_runs",
    "pending_request_run",
    "request_run",
    "withdraw_request",
]

#: The advisory lock key of "the coinharvest leader" in this database ('coin' in ASCII; it
#: is below 2**32, so pg_locks shows it as classid 0, objid LEADER_KEY).
LEADER_KEY = 0x636F696E

#: Leads if this session holds the lock already (re-checked, not re-taken: session locks
#: stack), else tries to take it; and the database's clock, for the caller's offset.
_CHECK = text(
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
    "AND pid = pg_backend_pid() AND classid = 0 AND objid = CAST(:key AS bigint) "
    "AND objsubid = 1 AND granted) THEN true ELSE pg_try_advisory_lock(CAST(:key AS bigint)) "
    "END AS leads, "
    "extract(epoch FROM clock_timestamp())::float8 AS now"
)

#: Heartbeat; `leader_since` is set when the replica starts leading, kept while it leads,
#: cleared when it follows. Returns the previous leader_since (NULL: it did not lead).
_HEARTBEAT = text(
    "INSERT INTO replicas (replica_id, host, pid, http_url, started_at, heartbeat_at, "
    "leader_since) VALUES (:id, :host, :pid, :url, clock_timestamp(), clock_timestamp(), "
    "CASE WHEN CAST(:leads AS boolean) THEN clock_timestamp() END) "
    "ON CONFLICT (replica_id) DO UPDATE SET heartbeat_at = clock_timestamp(), "
    "http_url = EXCLUDED.http_url, leader_since = CASE WHEN CAST(:leads AS boolean) "
    "THEN COALESCE(replicas.leader_since, clock_timestamp()) END "
    "RETURNING leader_since"
)

#: Others that still say they lead (a dead leader's row), cleared by a new leader; returns
#: who they were and how long ago they were last heard of.
_DEPOSE = text(
    "UPDATE replicas SET leader_since = NULL WHERE replica_id <> :id "
    "AND leader_since IS NOT NULL RETURNING replica_id, "
    "extract(epoch FROM clock_timestamp() - heartbeat_at)::float8 AS silent_s"
)

#: Rows of replicas not heard of for a day: gone.
_FORGET = text("DELETE FROM replicas WHERE heartbeat_at < clock_timestamp() - interval '1 day'")

#: The fence: the tick due now on the database's clock, claimed once, and only by the
#: holder of the leader lock (a paused ex-leader whose session ended claims nothing).
_CLAIM_TICK = text(
    "WITH p AS (SELECT CAST(:ims AS bigint) AS ims, "
    "extract(epoch FROM clock_timestamp())::float8 AS t), "
    "k AS (SELECT ims, t, floor(t * 1000 / ims)::bigint AS tick FROM p) "
    "INSERT INTO schedule_ticks (interval_ms, tick, replica_id, run_id, claimed_at, late_s) "
    "SELECT ims, tick, CAST(:id AS varchar), CAST(:run AS varchar), clock_timestamp(), "
    "t - tick * ims / 1000.0 FROM k WHERE tick > CAST(:after AS bigint) AND EXISTS ("
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
    "AND classid = 0 AND objid = CAST(:key AS bigint) AND objsubid = 1 AND granted) "
    "ON CONFLICT DO NOTHING RETURNING tick, late_s"
)

#: The newest tick of this interval claimed by anyone (what the next leader continues from).
_LAST_TICK = text("SELECT max(tick) FROM schedule_ticks WHERE interval_ms = :ims")

_CLAIM_REQUEST = text(
    "UPDATE run_requests SET claimed_by = :id, run_id = :run WHERE id = ("
    "SELECT id FROM run_requests WHERE claimed_by IS NULL ORDER BY id "
    "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
)

_REQUEST = text(
    "INSERT INTO run_requests (requested_by, requested_at) "
    "VALUES (:id, clock_timestamp()) RETURNING id"
)
_REQUEST_RUN = text("SELECT claimed_by, run_id FROM run_requests WHERE id = :rid")
_WITHDRAW = text("DELETE FROM run_requests WHERE id = :rid AND claimed_by IS NULL")

#: Runs a leader started (a claimed tick or request) that still say running, except ours.
_ORPHANS = text(
    "SELECT r.run_id FROM runs r WHERE r.status = 'running' AND (r.owner IS NULL "
    "OR r.owner <> :owner) AND (EXISTS (SELECT 1 FROM schedule_ticks t WHERE t.run_id = "
    "r.run_id) OR EXISTS (SELECT 1 FROM run_requests q WHERE q.run_id = r.run_id))"
)


@dataclass(frozen=True, slots=True)
class Check:
    """One leadership check: whether this session leads, and the database's epoch seconds."""

    leads: bool
    db_now: float


async def check_lock(conn: AsyncConnection) -> Check:
    """Hold (or try to take) the leader lock on `conn`, this replica's dedicated session."""
    row = (await conn.execute(_CHECK, {"key": LEADER_KEY})).one()
    return Check(bool(row.leads), float(row.now))


async def heartbeat(
    conn: AsyncConnection, replica_id: str, host: str, pid: int, url: str | None, leads: bool
) -> datetime | None:
    """Write this replica's heartbeat; the time it has led since (None: it follows)."""
    params = {"id": replica_id, "host": host, "pid": pid, "url": url, "leads": leads}
    since = (await conn.execute(_HEARTBEAT, params)).scalar_one()
    return since if isinstance(since, datetime) else None


async def depose_others(conn: AsyncConnection, replica_id: str) -> list[tuple[str, float]]:
    """Clear other replicas' leader marks (the new leader's first step); who and how long
    silent. Also forgets replicas gone for a day."""
    rows = (await conn.execute(_DEPOSE, {"id": replica_id})).all()
    await conn.execute(_FORGET)
    return [(str(r.replica_id), float(r.silent_s)) for r in rows]


async def last_tick(conn: AsyncConnection, interval_ms: int) -> int | None:
    """The newest tick of this interval anyone claimed."""
    value = (await conn.execute(_LAST_TICK, {"ims": interval_ms})).scalar_one_or_none()
    return int(value) if value is not None else None


async def claim_tick(
    conn: AsyncConnection, interval_ms: int, replica_id: str, run_id: str, after: int
) -> tuple[int, float] | None:
    """Claim the tick due now (database clock) for `run_id`, if it is newer than `after`,
    nobody claimed it and this session leads; (tick, seconds late) or None."""
    params = {"ims": interval_ms, "id": replica_id, "run": run_id, "after": after}
    row = (await conn.execute(_CLAIM_TICK, {**params, "key": LEADER_KEY})).one_or_none()
    return (int(row.tick), float(row.late_s)) if row is not None else None


async def claim_request(conn: AsyncConnection, replica_id: str, run_id: str) -> int | None:
    """Take the oldest waiting run request for `run_id`; its id, or None if none waits."""
    value = (await conn.execute(_CLAIM_REQUEST, {"id": replica_id, "run": run_id})).scalar()
    return int(value) if value is not None else None


async def request_run(conn: AsyncConnection, replica_id: str) -> int:
    """Ask the leader for a run; the request's id."""
    return int((await conn.execute(_REQUEST, {"id": replica_id})).scalar_one())


async def pending_request_run(conn: AsyncConnection, request_id: int) -> str | None:
    """The run id the leader gave request `request_id` (None: not claimed yet)."""
    row = (await conn.execute(_REQUEST_RUN, {"rid": request_id})).one_or_none()
    return str(row.run_id) if row is not None and row.run_id is not None else None


async def withdraw_request(conn: AsyncConnection, request_id: int) -> bool:
    """Take back a request no leader claimed; False if one claimed it meanwhile."""
    return bool((await conn.execute(_WITHDRAW, {"rid": request_id})).rowcount)


async def orphan_runs(conn: AsyncConnection, owner: str) -> list[str]:
    """Ids of runs another leader started that still say ``running`` (its process is gone:
    this session holds the lock its session held)."""
    return [str(r.run_id) for r in (await conn.execute(_ORPHANS, {"owner": owner}))]
