"""A shared lease lives as long as its holder's session, against a real PostgreSQL.

Each `SharedLimits` plays one process. A holder "dies" as a killed process does for the
database: its owner lock's session ends (closed, or ended by the server). Its leases expire
an hour later, so only the liveness check can free their slots; and a live holder's slot
stays taken. No test sleeps or reads the wall clock.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.engine.limiter import SourceLimiter
from coinharvest.engine.shared_limits import SharedLimits, SharedLimitsDown
from coinharvest.models import SourceLimits
from coinharvest.storage.shared_limiter_sql import OWNER_NS

HOUR_S = 3600.0

_ASK = text(
    "SELECT wait_ms, why FROM shared_limit_acquire('nano:', :lease, :owner, :lease_ms, 1, 0,"
    " 60000, NULL, NULL, NULL, NULL, NULL, 600000)"
)


@pytest.fixture
def db(pg_db: AsyncEngine) -> AsyncEngine:
    """The test's PostgreSQL database (`pg_db`)."""
    return pg_db


@pytest.fixture
async def holders(db: AsyncEngine) -> AsyncIterator[tuple[SharedLimits, SharedLimits]]:
    """Two processes' clients; leases that would expire only in an hour."""
    a, b = SharedLimits(db, {}, lease_s=HOUR_S), SharedLimits(db, {}, lease_s=HOUR_S)
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


def _nano(spacing_s: float = 0.0) -> SourceLimiter:
    """A source with an in-flight cap of 1 (as the Nano node)."""
    return SourceLimiter("nano", SourceLimits(1, spacing_s), clock=lambda: 0.0)


async def _ask(db: AsyncEngine, shared: SharedLimits) -> tuple[int, str | None]:
    """One admission of `shared`'s owner for the cap-1 source, as its `admit` asks it."""
    params = {"lease": uuid.uuid4(), "owner": await shared.owner.held(), "lease_ms": 1e6}
    async with db.begin() as conn:
        row = (await conn.execute(_ASK, params)).one()
    return int(row.wait_ms), row.why


async def _terminate(db: AsyncEngine, shared: SharedLimits) -> None:
    """The server ends the session holding `shared`'s owner lock (and waits until it ended)."""
    sql = text(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE locktype = 'advisory'"
        " AND classid = :ns AND objid = :owner AND objsubid = 2 AND granted"
    )
    async with db.begin() as conn:
        ended = (await conn.execute(sql, {"ns": OWNER_NS, "owner": shared.owner.number})).all()
    assert [tuple(row) for row in ended] == [(True,)]


async def _closed(db: AsyncEngine, shared: SharedLimits) -> None:
    del db
    await shared.aclose()


DEATHS: dict[str, Callable[[AsyncEngine, SharedLimits], Awaitable[None]]] = {
    "session-closed": _closed,
    "backend-terminated": _terminate,
}


@pytest.mark.parametrize("death", DEATHS)
async def test_a_dead_holders_slot_is_free_at_once_and_a_live_ones_is_not(
    db: AsyncEngine, holders: tuple[SharedLimits, SharedLimits], death: str
) -> None:
    a, b = holders
    assert await a.admit(_nano(), uuid.uuid4(), lambda: 0.0) is None  # a holds the only slot
    assert await _ask(db, b) == (-1, "cap")  # a lives: its slot stays taken
    assert await _ask(db, b) == (-1, "cap")
    await DEATHS[death](db, a)
    assert await b.admit(_nano(), uuid.uuid4(), lambda: 0.0) is None  # no expiry waited for
    async with db.connect() as conn:
        owners = (await conn.execute(text("SELECT owner FROM shared_limit_leases"))).scalars()
        assert list(owners) == [b.owner.number]  # a's lease dropped, b's counts


async def test_a_holder_whose_session_ended_takes_its_lock_again_before_admitting(
    db: AsyncEngine, holders: tuple[SharedLimits, SharedLimits]
) -> None:
    a, b = holders
    first = await a.owner.held()
    await _terminate(db, a)
    # Its next admission re-takes the lock (free again: the same number) on a new session.
    assert await a.admit(_nano(), uuid.uuid4(), lambda: 0.0) is None
    assert a.owner.number == first
    assert await _ask(db, b) == (-1, "cap")  # and its lease counts


async def test_a_lock_the_database_does_not_see_is_taken_again_before_admitting(
    db: AsyncEngine, holders: tuple[SharedLimits, SharedLimits]
) -> None:
    a, _ = holders
    await a.owner.held()
    # The connection lives but its lock is gone: the database refuses the owner (-3) and
    # the client takes the lock again before its admission is recorded.
    await a.owner._conn.execute("SELECT pg_advisory_unlock_all()")
    assert await a.admit(_nano(), uuid.uuid4(), lambda: 0.0) is None
    async with db.connect() as conn:
        held = text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :ns"
            " AND objid = :owner AND objsubid = 2 AND granted"
        )
        assert (await conn.execute(held, {"ns": OWNER_NS, "owner": a.owner.number})).scalar() == 1


async def test_a_request_whose_holder_died_is_not_sent(
    db: AsyncEngine, holders: tuple[SharedLimits, SharedLimits]
) -> None:
    a, b = holders
    lease = uuid.uuid4()
    assert await a.admit(_nano(0.01), lease, lambda: 0.0) is None
    await _terminate(db, a)  # before its headers left: others may have its slot now
    with pytest.raises(SharedLimitsDown, match="the lease no longer counts"):
        await a.on_wire(_nano(0.01), lease)
    assert await b.admit(_nano(0.01), uuid.uuid4(), lambda: 0.0) is None
