"""The shared limiter's PL/pgSQL functions and client against a real PostgreSQL.

Each test asks the database directly (`SharedLimits` as two processes would, or the SQL
functions), so what is checked is the decision the database makes on its own clock: spacing,
the rolling window, the in-flight cap, lease expiry, cooldown, quotas, and that the
processes' own clocks play no part. No test reads the wall clock or the date.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.engine.limiter import SourceLimiter
from coinharvest.engine.quota import QuotaBudget
from coinharvest.engine.shared_limits import (
    OwnerLock,
    SharedLimits,
    SharedLimitsDown,
    SharedQuotaSpent,
    check_shared_limits_url,
)
from coinharvest.errors import ConfigError
from coinharvest.models import SourceLimits
from coinharvest.storage import open_database
from coinharvest.storage.database import create_engine

K = "coingecko:abc"


@pytest.fixture
def db(pg_db: AsyncEngine) -> AsyncEngine:
    """The test's PostgreSQL database (`pg_db`)."""
    return pg_db


@pytest.fixture
async def owner(db: AsyncEngine) -> AsyncIterator[int]:
    """A live owner number: its lock held for the test, as a running process holds it."""
    lock = OwnerLock(db, timeout_s=5)
    try:
        yield await lock.held()
    finally:
        await lock.aclose()


async def _acquire(db: AsyncEngine, owner: int, **kw: Any) -> tuple[int, str | None, int, int]:
    params: dict[str, Any] = {
        "k": K, "lease": uuid.uuid4(), "owner": owner, "lease_ms": 30_000.0, "cap": 10,
        "spacing_ms": 0.0,
        "window_ms": 60_000.0, "window_n": None, "per_day": None, "per_month": None,
        "learned_cap": None, "learned_spacing_ms": None, "learned_ttl_ms": 600_000.0,
    } | kw  # fmt: skip
    async with db.begin() as conn:
        row = await conn.execute(
            text(
                "SELECT * FROM shared_limit_acquire(:k, :lease, :owner, :lease_ms, :cap,"
                " :spacing_ms, :window_ms, :window_n, :per_day, :per_month, :learned_cap,"
                " :learned_spacing_ms, :learned_ttl_ms)"
            ),
            params,
        )
        wait, why, day, month = row.one()
    return wait, why, day, month


async def test_spacing_is_decided_on_the_database_clock(db: AsyncEngine, owner: int) -> None:
    assert (await _acquire(db, owner, spacing_ms=5_000.0))[:2] == (0, None)
    wait, why, _, _ = await _acquire(db, owner, spacing_ms=5_000.0)
    assert why == "spacing" and 4_000 < wait <= 5_000


async def test_the_rolling_window_admits_n_starts_then_waits_for_the_oldest(
    db: AsyncEngine, owner: int
) -> None:
    for _ in range(3):
        assert (await _acquire(db, owner, window_n=3))[0] == 0
    wait, why, _, _ = await _acquire(db, owner, window_n=3)
    assert why == "window" and 59_000 < wait <= 60_000


async def test_a_full_in_flight_cap_says_minus_one_until_a_release(
    db: AsyncEngine, owner: int
) -> None:
    first = uuid.uuid4()
    assert (await _acquire(db, owner, cap=2, lease=first))[0] == 0
    assert (await _acquire(db, owner, cap=2))[0] == 0
    assert (await _acquire(db, owner, cap=2))[:2] == (-1, "cap")
    await SharedLimits(db, {}, lease_s=30).release("coingecko", uuid.uuid4())  # not K: no-op
    async with db.begin() as conn:
        await conn.execute(text("DELETE FROM shared_limit_leases WHERE lease = :l"), {"l": first})
    assert (await _acquire(db, owner, cap=2))[0] == 0


async def test_a_crashed_process_lease_expires_and_frees_its_slot(
    db: AsyncEngine, owner: int
) -> None:
    assert (await _acquire(db, owner, cap=1, lease_ms=100.0))[0] == 0  # never released
    assert (await _acquire(db, owner, cap=1))[:2] == (-1, "cap")
    await asyncio.sleep(0.15)
    assert (await _acquire(db, owner, cap=1))[0] == 0


async def test_a_cooldown_pauses_the_source_for_every_process(db: AsyncEngine, owner: int) -> None:
    shared = SharedLimits(db, {"coingecko": "abc"}, lease_s=30)
    shared.cool_down("coingecko", 30.0)
    await shared.aclose()
    wait, why, _, _ = await _acquire(db, owner)
    assert why == "cooldown" and 29_000 < wait <= 30_000


async def test_quotas_are_counted_in_the_database_and_refuse_when_spent(
    db: AsyncEngine, owner: int
) -> None:
    assert (await _acquire(db, owner, per_day=2)) == (0, None, 1, 1)
    assert (await _acquire(db, owner, per_day=2)) == (0, None, 2, 2)
    assert (await _acquire(db, owner, per_day=2)) == (-2, "quota", 2, 2)
    # A monthly quota of 1 allows 1 whatever the day of the month.
    assert (await _acquire(db, owner, k="other:", per_month=1))[0] == 0
    assert (await _acquire(db, owner, k="other:", per_month=1))[:2] == (-2, "quota")


async def test_a_learned_limit_binds_every_process_until_it_wears_off(
    db: AsyncEngine, owner: int
) -> None:
    # One process's controller reports cap 1; another asking with cap 3 gets cap 1.
    assert (await _acquire(db, owner, cap=3, learned_cap=1, learned_spacing_ms=0.0))[0] == 0
    assert (await _acquire(db, owner, cap=3))[:2] == (-1, "cap")
    assert (await _acquire(db, owner, cap=3, learned_cap=3, learned_spacing_ms=0.0))[0] == 0


async def test_the_client_refuses_a_spent_quota_and_seeds_the_local_one(db: AsyncEngine) -> None:
    limits = SourceLimits(max_concurrency=5, quota_per_day=1)
    limiter = SourceLimiter("coingecko", limits, clock=lambda: 0.0)
    limiter.quota = QuotaBudget("coingecko", 1, None)
    shared = SharedLimits(db, {"coingecko": "abc"}, lease_s=30)
    assert await shared.admit(limiter, uuid.uuid4(), lambda: 0.0) is None
    refused = await shared.admit(limiter, uuid.uuid4(), lambda: 0.0)
    await shared.aclose()
    assert isinstance(refused, SharedQuotaSpent)
    assert "daily quota (1 requests) is spent" in str(refused)
    assert limiter.quota_refusal() is not None  # the run defers the source's jobs


async def test_two_processes_clocks_an_hour_apart_still_space_their_starts(
    pg_url: str,
) -> None:
    spacing_s = 0.1
    engines = [await open_database(pg_url), await open_database(pg_url)]
    try:
        clocks = [lambda: 0.0, lambda: 3600.0]  # the processes' own clocks disagree by 1 h
        limits = SourceLimits(max_concurrency=10, min_interval_s=spacing_s)
        clients = [SharedLimits(e, {}, lease_s=30) for e in engines]
        limiters = [SourceLimiter("coingecko", limits, clock=c) for c in clocks]

        async def starts(i: int) -> None:
            for _ in range(3):
                assert await clients[i].admit(limiters[i], uuid.uuid4(), clocks[i]) is None

        await asyncio.gather(starts(0), starts(1))
        for client in clients:
            await client.aclose()
        async with engines[0].connect() as conn:
            at = (await conn.execute(text("SELECT at FROM shared_limit_starts ORDER BY at"))).all()
    finally:
        for engine in engines:
            await engine.dispose()
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(at)]
    assert len(at) == 6 and min(gaps) >= spacing_s


async def test_the_wire_gate_waits_for_the_last_send_of_any_process(db: AsyncEngine) -> None:
    limiter = SourceLimiter("coingecko", SourceLimits(10, 0.2), clock=lambda: 0.0)
    a, b = SharedLimits(db, {}, lease_s=30), SharedLimits(db, {}, lease_s=30)
    leases = [uuid.uuid4(), uuid.uuid4()]
    assert await a.admit(limiter, leases[0], lambda: 0.0) is None
    assert await b.admit(limiter, leases[1], lambda: 0.0) is None  # admitted 0.2 s later
    await b.on_wire(limiter, leases[1])  # b sends first (a is still connecting)
    await a.on_wire(limiter, leases[0])  # a must wait 0.2 s after b's send
    await a.aclose()
    await b.aclose()
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT lease, at FROM shared_limit_starts"))).all()
    at = {row.lease: row.at for row in rows}
    assert (at[leases[0]] - at[leases[1]]).total_seconds() >= 0.2


async def test_an_unreachable_database_fails_closed(pg_url: str) -> None:
    dead = create_engine(pg_url.replace(pg_url.split("@")[1].split("/")[0], "127.0.0.1:9"))
    try:
        limiter = SourceLimiter("coingecko", SourceLimits(3, 0.1), clock=lambda: 0.0)
        outcome = await SharedLimits(dead, {}, lease_s=30, timeout_s=2).admit(
            limiter, uuid.uuid4(), lambda: 0.0
        )
        assert isinstance(outcome, SharedLimitsDown)
        assert "shared limits unavailable" in str(outcome)
    finally:
        await dead.dispose()


def test_shared_limits_on_sqlite_is_a_one_line_config_error() -> None:
    check_shared_limits_url(False, "sqlite+aiosqlite:///x.db")
    check_shared_limits_url(True, "postgresql+asyncpg://h/db")
    with pytest.raises(ConfigError, match=r"^SHARED_LIMITS=on needs DATABASE_URL=postgresql"):
        check_shared_limits_url(True, "sqlite+aiosqlite:///x.db")
