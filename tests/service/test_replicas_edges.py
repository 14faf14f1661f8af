"""Replicas at their edges, on a real PostgreSQL, in one process (each `Leadership` has its own
session, exactly as separate replicas do):

- a new version's migration does not wait for a leader's lock;
- a leader that stops checking (paused, frozen) loses the lead within `stale_s`;
- a manual run on the leader is fenced: if the leader dies it reads interrupted, also when
  the next process has the same ``host:pid`` (a container restarted in place);
- a follower asked for a run while nobody leads answers NoLeader (HTTP 503);
- a clean stop steps down: the successor does not count a takeover;
- an old tick series and a fresh start count no skipped ticks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from storage.conftest import pg_server  # noqa: F401  # the session's PostgreSQL server
from storage.pgserver import PgServer

from coinharvest.engine import Engine
from coinharvest.models import Coin
from coinharvest.service.leadership import TAKEN_OVER, Leadership
from coinharvest.service.manual_runs import ManualRuns, NoLeader
from coinharvest.service.replicated import ReplicatedScheduler
from coinharvest.service.scheduler import Scheduler
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.storage import leader_sql, open_database
from coinharvest.storage.migrate import upgrade

from .replicakit import new_database, until

COIN = Coin("AAA", "A", {"sim": "a"}, (("sim",),))


@pytest.fixture
async def db(pg_server: PgServer) -> AsyncIterator[AsyncEngine]:  # noqa: F811
    engine = await open_database(await new_database(pg_server, "edges"))
    yield engine
    await engine.dispose()


def scheduler(interval_s: float = 60.0) -> Scheduler:
    return Scheduler(
        Engine({"sim": SimulatedSource("sim")}), lambda: [COIN], interval_s=interval_s, grace_s=1
    )


def changes_of(owner: str, db: AsyncEngine, seen: list[tuple[bool, bool]]) -> Leadership:
    return Leadership(db, owner=owner, check_s=0.1, on_change=lambda *c: seen.append(c))


async def test_a_migration_does_not_wait_for_the_leader(db: AsyncEngine) -> None:
    lead = Leadership(db, owner="host:1", check_s=0.1)
    try:
        assert await lead.check() is True
        await asyncio.wait_for(upgrade(db), 10)  # takes the migrations' lock, not the leader's
    finally:
        await lead.step_down()


async def test_a_leader_that_stops_checking_loses_the_lead(db: AsyncEngine) -> None:
    frozen, other = (
        Leadership(db, owner="host:1", check_s=0.1),
        Leadership(db, owner="host:2", check_s=0.1),
    )
    try:
        assert await frozen.check() is True
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not await other.check():  # `frozen` checks no more, as if SIGSTOPped
            assert loop.time() - start < frozen.stale_s + 5, "the frozen leader kept the lock"
            await asyncio.sleep(0.1)
        assert loop.time() - start >= frozen.stale_s - 0.5  # the server's idle timeout, not luck
    finally:
        await frozen.step_down()
        await other.step_down()


async def test_a_manual_run_on_a_leader_that_dies_reads_interrupted(db: AsyncEngine) -> None:
    lead, next_one = (
        Leadership(db, owner="pod-0:1", check_s=0.1),
        Leadership(
            db,
            owner="pod-0:1",
            check_s=0.1,  # restarted in place: the same host and pid
        ),
    )
    try:
        assert await lead.check() is True
        runs = ManualRuns(scheduler(), lead, asyncio.Lock(), wait_s=1.0)
        claim = runs.claim()
        async with lead.session() as conn:
            assert await leader_sql.own_request(conn, claim) is not None
        await lead.aclose()  # the process dies before the run ends
        assert await next_one.check() is True
        async with db.connect() as conn:
            query = text("SELECT status, error FROM runs WHERE run_id = :r")
            row = (await conn.execute(query, {"r": claim.run_id})).one()
        assert (row.status, row.error) == ("interrupted", TAKEN_OVER)
    finally:
        await lead.step_down()
        await next_one.step_down()


async def test_a_follower_asked_for_a_run_with_no_leader_says_so(db: AsyncEngine) -> None:
    follower = Leadership(db, owner="host:2", check_s=0.1)
    try:
        await follower.check()
        await follower.step_down()  # it led (alone); now nobody leads
        runs = ManualRuns(scheduler(), follower, asyncio.Lock(), wait_s=0.3)
        with pytest.raises(NoLeader):
            await runs.start_run()
        async with db.connect() as conn:
            left = (await conn.execute(text("SELECT count(*) FROM run_requests"))).scalar()
        assert left == 0  # withdrawn: no leader starts it later
    finally:
        await follower.step_down()


async def test_a_clean_stop_is_not_a_takeover(db: AsyncEngine) -> None:
    seen: list[tuple[bool, bool]] = []
    sched = scheduler()
    loop = ReplicatedScheduler(sched, Leadership(db, owner="host:1", check_s=0.1))
    task = asyncio.create_task(loop.serve())
    successor = changes_of("host:2", db, seen)
    try:
        await until(lambda: sched.stats.runs >= 1)
        sched.request_stop()
        await asyncio.wait_for(task, 10)
        assert await successor.check() is True
        assert seen == [(True, False)]  # it leads, and it was no takeover
    finally:
        await successor.step_down()


async def test_an_old_series_and_a_fresh_start_count_no_skipped_ticks(db: AsyncEngine) -> None:
    other = Leadership(db, owner="host:9", check_s=0.1)
    await other.check()  # a replica heard of just now (it led a moment ago)
    await other.step_down()
    async with db.begin() as conn:  # a tick of this interval claimed 500 ticks ago
        await conn.execute(
            text(
                "INSERT INTO schedule_ticks VALUES (600, floor(extract(epoch FROM "
                "clock_timestamp()) / 0.6)::bigint - 500, 'old', 'old-run', now(), 0)"
            )
        )
    sched = scheduler(interval_s=0.6)
    task = asyncio.create_task(
        ReplicatedScheduler(sched, Leadership(db, owner="h:1", check_s=0.1)).serve()
    )
    try:
        await until(lambda: sched.stats.runs >= 2)
    finally:
        sched.request_stop()
        await asyncio.wait_for(task, 10)
    assert sched.stats.skipped_ticks == 0


async def test_ticks_missed_while_a_frozen_leader_held_the_lock_are_counted(
    db: AsyncEngine,
) -> None:
    frozen = Leadership(db, owner="host:1", check_s=0.1)
    assert await frozen.check() is True
    claim = leader_sql.Claim(frozen.replica_id, "frozen-run", "host:1", 1)
    async with frozen.session() as conn:
        assert await leader_sql.claim_tick(conn, 600, claim, -1)
    stop = asyncio.Event()

    async def keep_alive() -> None:  # a follower heard of all along (it never gets the lock)
        beat = text(
            "INSERT INTO replicas VALUES ('other:3:x', 'other', 3, NULL, clock_timestamp(), "
            "clock_timestamp(), NULL) ON CONFLICT (replica_id) DO UPDATE SET heartbeat_at = "
            "clock_timestamp()"
        )
        while not stop.is_set():
            async with db.begin() as conn:
                await conn.execute(beat)
            await asyncio.sleep(0.1)

    sched = scheduler(interval_s=0.6)
    task = asyncio.create_task(
        ReplicatedScheduler(sched, Leadership(db, owner="host:2", check_s=0.1)).serve()
    )
    beat = asyncio.create_task(keep_alive())
    try:
        await until(lambda: sched.stats.runs >= 1)  # after the idle timeout ended `frozen`
    finally:
        sched.request_stop()
        stop.set()
        await asyncio.wait_for(asyncio.gather(task, beat), 10)
        await frozen.step_down()
    # ~stale_s (2.3 s) with no leader at 0.6 s a tick: some ticks passed, and they count.
    assert sched.stats.skipped_ticks >= 2


async def test_a_statement_that_hangs_is_cut_at_the_session_timeout(db: AsyncEngine) -> None:
    lead = Leadership(db, owner="host:1", check_s=0.1)  # timeout_s: 2 s
    try:
        with pytest.raises(TimeoutError):
            async with lead.session() as conn:  # a black-holed connection, as the loop sees it
                await conn.execute(text("SELECT pg_sleep(30)"))
    finally:
        await lead.step_down()


async def test_a_claim_left_behind_by_the_same_replica_reads_interrupted(db: AsyncEngine) -> None:
    lead = Leadership(db, owner="host:1", check_s=0.1)
    try:
        assert await lead.check() is True
        claim = leader_sql.Claim(lead.replica_id, "lost-run", "host:1", 1)
        async with lead.session() as conn:
            assert await leader_sql.claim_tick(conn, 600, claim, -1)
        await lead.lost("the reply never came")  # e.g. the connection dropped after the commit
        assert await lead.check() is True  # its own lead back
        async with db.connect() as conn:
            query = text("SELECT status FROM runs WHERE run_id = 'lost-run'")
            assert (await conn.execute(query)).scalar() == "interrupted"
    finally:
        await lead.step_down()


async def test_a_tick_claimed_as_a_stop_came_is_given_back(db: AsyncEngine) -> None:
    lead = Leadership(db, owner="host:1", check_s=0.1)
    sched = scheduler()
    try:
        assert await lead.check() is True
        runs = ManualRuns(sched, lead, asyncio.Lock(), wait_s=1.0)
        claim = runs.claim()
        async with lead.session() as conn:
            assert await leader_sql.claim_tick(conn, 600, claim, -1)
        sched.request_stop()  # SIGTERM between the claim and the start
        assert await runs.launch(claim, "schedule") is False
        async with db.connect() as conn:
            left = (await conn.execute(text("SELECT count(*) FROM schedule_ticks"))).scalar()
        assert left == 0  # the next leader runs that tick
    finally:
        await lead.step_down()
