"""Fixtures of the storage tests: one `db_url` parametrized over SQLite and PostgreSQL.

PostgreSQL is a real throwaway server (`pgserver.PgServer`) started once per session; each
test gets its own fresh database on it. Without PostgreSQL binaries the PostgreSQL cases
are skipped with the reason, unless ``COINHARVEST_REQUIRE_PG=1`` (CI), where they fail.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.storage import Store, open_database

from .faults import FaultInjector
from .pgserver import PgServer, PgUnavailable
from .storekit import FAST

_db_names = itertools.count()


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
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

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
async def pg_url(pg_server: PgServer) -> str:
    """A URL of a fresh, empty PostgreSQL database (for PostgreSQL-only features)."""
    return await _create_pg_database(pg_server)


@pytest.fixture
async def pg_db(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated engine on a fresh PostgreSQL database."""
    engine = await open_database(pg_url)
    try:
        yield engine
    finally:
        await engine.dispose()


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
