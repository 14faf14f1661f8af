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

from coinharvest.storage import writes

__all__ = [
    "LEADER_KEY",
    "Check",
    "Claim",
    "check_lock",
    "claim_request",
    "claim_tick",
    "depose_others",
    "heartbeat",
    "last_tick",
    "leader_heard",
    "limit_idle",
    "orphan_runs",
    "others_heard",
    "own_request",
    "pending_request_run",
    "release_tick",
    "request_run",
    "step_down",
    "unclaim",
    "withdraw_request",
]

#: The advisory lock key of "the coinharvest leader" in this database ('coinlead' in ASCII).
#: Not the migrations' key (0x636F696E, `storage.migrate`): a leader holds its lock for
#: good, and a new version's migration must not wait for it. pg_locks shows it as classid
#: 0x636F696E, objid 0x6C656164, objsubid 1.
LEADER_KEY = 0x636F696E_6C656164

#: True while this session holds the leader lock.
_HOLDS = (
    "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
    "AND classid = 1668245870 AND objid = 1818583396 AND objsubid = 1 AND granted)"
)

#: Leads if this session holds the lock already (re-checked, not re-taken: session locks
#: stack), else tries to take it; and the database's clock, for the caller's offset.
_CHECK = text(
    f"SELECT CASE WHEN {_HOLDS} THEN true ELSE pg_try_advisory_lock(CAST(:key AS bigint)) "
    "END AS leads, extract(epoch FROM clock_timestamp())::float8 AS now"
)

#: A session idle this long is ended by the server, and its lock with it: a leader that is
#: paused, frozen or cut off from the database stops leading (PostgreSQL 14+).
_IDLE_TIMEOUT = text("SELECT set_config('idle_session_timeout', :ms, false)")

#: Heartbeat; `leader_since` is set when the replica starts leading, kept while it leads,
#: cleared when it follows. Returns leader_since (NULL: it follows).
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

#: When any other replica was last heard of (database epoch seconds; NULL: none ever).
_OTHERS_HEARD = text(
    "SELECT extract(epoch FROM max(heartbeat_at))::float8 FROM replicas WHERE replica_id <> :id"
)

#: A clean stop: no longer leading (the successor does not count a takeover), still heard.
_STEP_DOWN = text(
    "UPDATE replicas SET leader_since = NULL, heartbeat_at = clock_timestamp() "
    "WHERE replica_id = :id"
)

#: The run row a claim writes with it (status running): a claimed tick always has a run,
#: which a new leader marks interrupted if the claimer dies before finishing it.
_RUN_ROW = (
    "INSERT INTO runs (run_id, trigger, status, started_at, coins_total, coins_ok, "
    "coins_failed, coins_deferred, requests, rate_limited, retries, max_in_flight, "
    "store_errors, coins_unsaved, owner) SELECT CAST(:run AS varchar), CAST(:trigger AS "
    "varchar), 'running', clock_timestamp(), CAST(:coins AS integer), 0, 0, 0, 0, 0, 0, 0, "
    "0, 0, CAST(:owner AS varchar) FROM claim"
)

#: The fence: the tick due now on the database's clock, claimed once, and only by the
#: holder of the leader lock (a paused ex-leader whose session ended claims nothing).
_CLAIM_TICK = text(
    "WITH p AS (SELECT CAST(:ims AS bigint) AS ims, "
    "extract(epoch FROM clock_timestamp())::float8 AS t), "
    "k AS (SELECT ims, t, (floor(t * 1000 / ims) + CASE WHEN CAST(:nearest AS boolean) AND "
    "t * 1000 / ims - floor(t * 1000 / ims) >= 0.5 THEN 1 ELSE 0 END)::bigint AS tick FROM p), "
    "claim AS (INSERT INTO schedule_ticks (interval_ms, tick, replica_id, run_id, claimed_at, "
    "late_s) SELECT ims, tick, CAST(:id AS varchar), CAST(:run AS varchar), clock_timestamp(), "
    "greatest(0, t - tick * ims / 1000.0 - CAST(:jitter AS float8)) FROM k "
    f"WHERE tick > CAST(:after AS bigint) AND {_HOLDS} "
    "ON CONFLICT DO NOTHING RETURNING tick, late_s), "
    f"run AS ({_RUN_ROW}) SELECT tick, late_s FROM claim"
)

#: The newest tick of this interval anyone claimed (what the next leader continues from).
_LAST_TICK = text("SELECT max(tick) FROM schedule_ticks WHERE interval_ms = :ims")

#: The oldest request still waited for (younger than :age s), for the lock's holder only.
_CLAIM_REQUEST = text(
    "WITH claim AS (UPDATE run_requests SET claimed_by = :id, run_id = :run WHERE id = ("
    "SELECT id FROM run_requests WHERE claimed_by IS NULL AND requested_at > "
    "clock_timestamp() - make_interval(secs => CAST(:age AS float8)) ORDER BY id "
    f"LIMIT 1 FOR UPDATE SKIP LOCKED) AND {_HOLDS} RETURNING id), "
    f"run AS ({_RUN_ROW}) SELECT id FROM claim"
)

#: A manual run on the leader itself, recorded (and fenced) like a forwarded one.
_OWN_REQUEST = text(
    "WITH claim AS (INSERT INTO run_requests (requested_by, requested_at, claimed_by, run_id) "
    f"SELECT :id, clock_timestamp(), :id, :run WHERE {_HOLDS} RETURNING id), "
    f"run AS ({_RUN_ROW}) SELECT id FROM claim"
)

#: Requests nobody claimed in time (their asker gave up or died).
_EXPIRE_REQUESTS = text(
    "DELETE FROM run_requests WHERE claimed_by IS NULL AND requested_at <= "
    "clock_timestamp() - make_interval(secs => CAST(:age AS float8))"
)

_REQUEST = text(
    "INSERT INTO run_requests (requested_by, requested_at) "
    "VALUES (:id, clock_timestamp()) RETURNING id"
)
_REQUEST_RUN = text("SELECT claimed_by, run_id FROM run_requests WHERE id = :rid")
_WITHDRAW = text("DELETE FROM run_requests WHERE id = :rid AND claimed_by IS NULL")

#: Runs a leader started (a claimed tick or request) that still say running, except the one
#: this process is running: their leader's session ended (this one holds the lock now).
_ORPHANS = text(
    "SELECT r.run_id, coalesce(t.replica_id, q.claimed_by) AS replica_id FROM runs r "
    "LEFT JOIN schedule_ticks t ON t.run_id = r.run_id "
    "LEFT JOIN run_requests q ON q.run_id = r.run_id WHERE r.status = 'running' "
    "AND coalesce(t.replica_id, q.claimed_by) IS NOT NULL AND r.run_id <> :keep"
)

#: A scheduled run claimed but never started (a stop came in between): the tick is given
#: back, so the next leader runs it.
_RELEASE_TICK = (
    text("DELETE FROM schedule_ticks WHERE run_id = :run"),
    text("DELETE FROM runs WHERE run_id = :run AND status = 'running'"),
)

#: Whether a fresh replica (heard within :stale s) leads.
_LEADER_HEARD = text(
    "SELECT EXISTS (SELECT 1 FROM replicas WHERE leader_since IS NOT NULL AND heartbeat_at > "
    "clock_timestamp() - make_interval(secs => CAST(:stale AS float8)))"
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


async def limit_idle(conn: AsyncConnection, seconds: float) -> None:
    """Have the server end `conn`'s session after `seconds` idle (PostgreSQL 14+)."""
    await conn.execute(_IDLE_TIMEOUT, {"ms": str(max(1, round(seconds * 1000)))})


async def heartbeat(
    conn: AsyncConnection, replica_id: str, host: str, pid: int, url: str | None, leads: bool
) -> datetime | None:
    """Write this replica's heartbeat; the time it has led since (None: it follows)."""
    params = {"id": replica_id, "host": host, "pid": pid, "url": url, "leads": leads}
    since = (await conn.execute(_HEARTBEAT, params)).scalar_one()
    return since if isinstance(since, datetime) else None


async def step_down(conn: AsyncConnection, replica_id: str) -> None:
    """Stop leading cleanly: clear this replica's leader mark (not a takeover for the next)."""
    await conn.execute(_STEP_DOWN, {"id": replica_id})


async def depose_others(conn: AsyncConnection, replica_id: str) -> list[tuple[str, float]]:
    """Clear other replicas' leader marks (the new leader's first step); who and how long
    silent. Also forgets replicas gone for a day."""
    rows = (await conn.execute(_DEPOSE, {"id": replica_id})).all()
    await conn.execute(_FORGET)
    return [(str(r.replica_id), float(r.silent_s)) for r in rows]


async def others_heard(conn: AsyncConnection, replica_id: str) -> float | None:
    """When another replica was last heard of (database epoch seconds), if ever."""
    value = (await conn.execute(_OTHERS_HEARD, {"id": replica_id})).scalar()
    return float(value) if value is not None else None


async def leader_heard(conn: AsyncConnection, stale_s: float) -> bool:
    """Whether some replica leads and was heard within `stale_s` seconds."""
    return bool((await conn.execute(_LEADER_HEARD, {"stale": stale_s})).scalar())


async def last_tick(conn: AsyncConnection, interval_ms: int) -> int | None:
    """The newest tick of this interval anyone claimed."""
    value = (await conn.execute(_LAST_TICK, {"ims": interval_ms})).scalar_one_or_none()
    return int(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class Claim:
    """Who claims a run, for which run id: the run row written with the claim."""

    replica_id: str
    run_id: str
    owner: str
    coins: int

    def params(self, trigger: str) -> dict[str, object]:
        return {
            "id": self.replica_id,
            "run": self.run_id,
            "owner": self.owner,
            "coins": self.coins,
            "trigger": trigger,
        }


async def claim_tick(
    conn: AsyncConnection,
    interval_ms: int,
    claim: Claim,
    after: int,
    jitter_s: float = 0.0,
    nearest: bool = False,
) -> tuple[int, float] | None:
    """Claim the tick due now (database clock) for `claim.run_id` and write its run row, if
    the tick is newer than `after`, nobody claimed it and this session leads; (tick, seconds
    late, not counting `jitter_s`; 0 when early) or None. `nearest`: the tick whose due time
    is nearest, possibly the next one (a series' first run stands for the nearer boundary)."""
    params = {
        **claim.params("schedule"),
        "ims": interval_ms,
        "after": after,
        "jitter": jitter_s,
        "nearest": nearest,
    }
    row = (await conn.execute(_CLAIM_TICK, params)).one_or_none()
    return (int(row.tick), float(row.late_s)) if row is not None else None


async def claim_request(conn: AsyncConnection, claim: Claim, max_age_s: float) -> int | None:
    """As leader, take the oldest run request younger than `max_age_s` (older ones are
    dropped) and write its run row; the request's id, or None."""
    await conn.execute(_EXPIRE_REQUESTS, {"age": max_age_s})
    params = {**claim.params("api"), "age": max_age_s}
    value = (await conn.execute(_CLAIM_REQUEST, params)).scalar()
    return int(value) if value is not None else None


async def own_request(conn: AsyncConnection, claim: Claim) -> int | None:
    """As leader, record a manual run of its own and its run row; None if it does not lead."""
    value = (await conn.execute(_OWN_REQUEST, claim.params("api"))).scalar()
    return int(value) if value is not None else None


async def unclaim(conn: AsyncConnection, run_id: str, reason: str) -> None:
    """A claimed run that could not start after all: its run row reads interrupted."""
    await writes.interrupt_runs(conn, [run_id], reason)


async def release_tick(conn: AsyncConnection, run_id: str) -> None:
    """Give back the tick claimed for `run_id`, which never started (its run row goes too)."""
    for statement in _RELEASE_TICK:
        await conn.execute(statement, {"run": run_id})


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


async def orphan_runs(conn: AsyncConnection, keep: str | None) -> dict[str, str]:
    """Runs leaders started that still say ``running``, but `keep` (the run this process
    is running): run id → the replica that claimed it."""
    rows = await conn.execute(_ORPHANS, {"keep": keep or ""})
    return {str(r.run_id): str(r.replica_id) for r in rows}
