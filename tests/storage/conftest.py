"""Fixtures of the storage tests: one `db_url` parametrized over SQLite and PostgreSQL.

PostgreSQL is a real throwaway server (`pgserver.PgServer`) started once per session; each
test gets its own fresh database on it. Without PostgreSQL binaries the PostgreSQL cases
are skipped with the reason, unless ``COINHARVEST_REQUIRE_PG=1`` (CI), where they fail.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent))  # enginekit, vclock

from faults import FaultInjector
from pgserver import PgServer, PgUnavailable

from coinharvest.models import CoinResult, CoinStatus, Confidence, Observation
from coinharvest.storage import Store, WritePolicy, open_database

_db_names = itertools.count()

#: Retries fast enough for tests (same shape as production).
FAST = WritePolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session (skips only if the binaries are missing)."""
    try:
        server = PgServer().start()
    except PgUnavailable as exc:
        if os.environ.get("COINHARVEST_REQUIRE_PG") == "1":
            pytest.fail(f"COINHARVEST_REQUIRE_PG=1 but {exc}")
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


async def _create_pg_database(server: PgServer) -> str:
    import asyncpg

    name = f"t{os.getpid()}_{next(_db_names)}"
    conn = await asyncpg.connect(server.url.replace("+asyncpg", ""))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.url_for(name)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'coinharvest.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return await _create_pg_database(server)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """An opened store on a fresh database, with fast retries."""
    async with await Store.from_url(db_url, policy=FAST) as opened:
        yield opened


@pytest.fixture
async def faulty_store(db_url: str) -> AsyncIterator[tuple[Store, FaultInjector]]:
    """A store whose engine has a `FaultInjector` attached (the failure seam)."""
    engine = await open_database(db_url)
    faults = FaultInjector.attach(engine)
    try:
        async with Store(engine, policy=FAST) as opened:
            yield opened, faults
    finally:
        await engine.dispose()


#: A recent instant, relative to now, so that no test depends on today's date (data two
#: hours old is neither stale nor in the future, whatever day the tests run).
T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)


def result(
    symbol: str,
    metrics: int = 8,
    *,
    status: CoinStatus = CoinStatus.OK,
    at: datetime = T0,
    source: str = "coingecko",
    value: float = 1.0,
) -> CoinResult:
    """A coin result with `metrics` observations ``m0..m{n-1}`` valued `value`+i."""
    obs = [
        Observation(symbol, source, f"m{i}", value + i, at, Confidence.HIGH) for i in range(metrics)
    ]
    return CoinResult(
        symbol=symbol,
        name=f"{symbol} coin",
        status=status,
        started_at=at,
        duration_s=0.25,
        attempts=1,
        sources=(source,),
        observations=obs,
        errors=[] if status is CoinStatus.OK else ["boom"],
    )


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
