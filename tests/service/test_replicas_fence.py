"""The election and the tick fence on a real PostgreSQL, in one process: each `Leadership`
has its own session, exactly as separate replicas do.

- only the lock's holder claims a tick, and a tick is claimed once;
- an ex-leader whose session ended (a paused process the server gave up on) claims nothing;
- a takeover clears the dead leader's mark and interrupts the runs it started;
- a leader whose connection is cut follows, keeps its loop alive and leads again;
- the processes' own clocks do not matter: tick identity and lateness come from the
  database's clock, whatever offset a replica's clock has.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from storage.conftest import pg_server  # noqa: F401  # the session's PostgreSQL server
from storage.pgserver import PgServer

from coinharvest.engine import Engine
from coinharvest.models import Coin
from coinharvest.service.leadership import TAKEN_OVER, Leadership
from coinharvest.service.replicated import ReplicatedScheduler
from coinharvest.service.scheduler import Scheduler
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.storage import leader_sql, open_database
from coinharvest.storage.schema import runs

from .replicakit import new_database, until

INTERVAL_MS = 60_000


@pytest.fixture
async def db(pg_server: PgServer) -> AsyncIterator[AsyncEngine]:  # noqa: F811
    engine = await open_database(await new_database(pg_server, "fence"))
    yield engine
    await engine.dispose()


def claim(lead: Leadership, run_id: str) -> leader_sql.Claim:
    """A claim of `lead` for run `run_id` of 3 coins."""
    return leader_sql.Claim(lead.replica_id, run_id, lead.owner, 3)


async def backend_pid(lead: Leadership) -> int:
    """The server process of `lead`'s dedicated session."""
    async with lead.session() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def replica(db: AsyncEngine, owner: str, *, skew_s: float = 0.0) -> Leadership:
    """A replica whose own clock is `skew_s` off (the loop's monotonic clock plus it)."""

    def clock() -> float:
        return asyncio.get_running_loop().time() + skew_s

    return Leadership(db, owner=owner, check_s=0.2, clock=clock)


async def test_only_the_holder_claims_and_a_tick_is_claimed_once(db: AsyncEngine) -> None:
    a, b = replica(db, "host:1"), replica(db, "host:2")
    try:
        assert await a.check() is True
        assert await b.check() is False
        async with a.session() as ca, b.session() as cb:
            assert await leader_sql.claim_tick(cb, INTERVAL_MS, claim(b, "run-b"), -1) is None
            claimed = await leader_sql.claim_tick(ca, INTERVAL_MS, claim(a, "run-a"), -1)
            assert claimed is not None
            again = await leader_sql.claim_tick(ca, INTERVAL_MS, claim(a, "run-a2"), -1)
            assert again is None  # the same tick: the fence holds even for the leader
    finally:
        await a.aclose()
        await b.aclose()


async def test_an_ex_leader_whose_session_ended_claims_nothing(db: AsyncEngine) -> None:
    a, b = replica(db, "host:1"), replica(db, "host:2")
    try:
        assert await a.check() is True
        pid = await backend_pid(a)
        async with db.begin() as admin:  # the server gives up on a's session
            await admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        assert await b.check() is True
        with pytest.raises(Exception):  # noqa: B017  # asyncpg's, wrapped by SQLAlchemy
            async with a.session() as old:
                await leader_sql.claim_tick(old, INTERVAL_MS, claim(a, "run-a"), -1)
        await a.aclose()  # what the loop does after a failed statement (`Leadership.lost`)
        assert await a.check() is False  # it reconnects, finds the lock taken, follows
        async with b.session() as cb:
            assert await leader_sql.claim_tick(cb, INTERVAL_MS, claim(b, "run-b"), -1)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_takeover_interrupts_the_dead_leaders_runs(db: AsyncEngine) -> None:
    changes: list[tuple[bool, bool]] = []
    a = replica(db, "host:1")
    b = Leadership(db, owner="host:2", check_s=0.2, on_change=lambda *c: changes.append(c))
    try:
        assert await a.check() is True
        async with a.session() as ca:
            assert await leader_sql.claim_tick(ca, INTERVAL_MS, claim(a, "run-a"), -1)
        await a.aclose()  # the leader's session ends (its process died)
        assert await b.check() is True
        assert changes == [(True, True)]  # became leader, by a takeover
        async with db.connect() as conn:
            row = (await conn.execute(select(runs).where(runs.c.run_id == "run-a"))).one()
            marks = await conn.execute(text("SELECT replica_id, leader_since FROM replicas"))
            leaders = {r.replica_id for r in marks if r.leader_since is not None}
        assert row.status == "interrupted"
        assert row.error == TAKEN_OVER
        assert leaders == {b.replica_id}
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_replicas_own_clock_does_not_matter(db: AsyncEngine) -> None:
    ahead, behind = replica(db, "host:1", skew_s=3600.0), replica(db, "host:2", skew_s=-7200.0)
    try:
        await ahead.check()
        await behind.check()
        now_ahead, now_behind = ahead.db_now(), behind.db_now()
        assert now_ahead is not None and now_behind is not None
        assert abs(now_ahead - now_behind) < 0.5  # both read the database's epoch
        async with db.connect() as conn:
            query = text("SELECT extract(epoch FROM now())::float8")
            db_epoch = float((await conn.execute(query)).scalar_one())
        assert abs(now_ahead - db_epoch) < 1.0
        leader = ahead if ahead.leads else behind
        async with leader.session() as conn:
            claimed = await leader_sql.claim_tick(conn, INTERVAL_MS, claim(leader, "run-x"), -1)
        assert claimed is not None
        tick, late_s = claimed
        assert tick == math.floor(db_epoch * 1000 / INTERVAL_MS)
        assert 0 <= late_s < INTERVAL_MS / 1000
    finally:
        await ahead.aclose()
        await behind.aclose()


async def test_a_leader_whose_connection_is_cut_keeps_serving_and_leads_again(
    db: AsyncEngine,
) -> None:
    changes: list[tuple[bool, bool]] = []
    lead = Leadership(db, owner="host:1", check_s=0.1, on_change=lambda *c: changes.append(c))
    engine = Engine({"sim": SimulatedSource("sim")})
    coin = Coin("AAA", "A", {"sim": "a"}, (("sim",),))
    sched = Scheduler(engine, lambda: [coin], interval_s=0.6, grace_s=1.0)
    loop = ReplicatedScheduler(sched, lead)
    task = asyncio.create_task(loop.serve())
    try:
        await until(lambda: sched.stats.runs >= 2)
        pid = await backend_pid(lead)
        async with db.begin() as admin:  # the server ends the leader's session
            await admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        runs_before = sched.stats.runs
        await until(lambda: sched.stats.runs >= runs_before + 2)
    finally:
        sched.request_stop()
        await asyncio.wait_for(task, 10)
    assert task.exception() is None
    assert changes == [(True, False), (False, False), (True, False), (False, False)]  # + stop
    async with db.connect() as conn:
        ticks = [r.tick for r in await conn.execute(text("SELECT tick FROM schedule_ticks"))]
    assert len(ticks) == len(set(ticks)) == sched.stats.runs
