"""Which database, and an async engine for it: URL resolution, driver checks, SQLite pragmas.

`database_url(settings)`: ``DATABASE_URL`` if set, else the SQLite file ``COINHARVEST_DB``
(default ``./coinharvest.db``, made absolute). Sync driver names are mapped to their async
twins (``postgresql://`` → ``postgresql+asyncpg://``, ``sqlite://`` → ``sqlite+aiosqlite://``).

`create_engine(url)` makes an `AsyncEngine`:

- SQLite: WAL journal (readers never block the writer), ``synchronous=NORMAL`` (durable at
  every checkpoint, and a crash never corrupts or half-applies a transaction), foreign keys
  on, a busy timeout for other processes, and SQLAlchemy emitting ``BEGIN`` itself so DDL and
  every write are truly transactional (pysqlite's legacy mode would autocommit DDL);
- PostgreSQL (asyncpg): a connection pool with pre-ping, so a restarted server costs one
  retried write instead of a run.

`open_database(url)` also checks the database is reachable and migrates it; failures become
one-line `StoreError`s naming the (password-less) URL.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

from coinharvest.config import Settings
from coinharvest.errors import ConfigError, StoreError
from coinharvest.storage.failures import safe_url, translate
from coinharvest.storage.migrate import upgrade
from coinharvest.storage.sqlite_bulk import raise_driver_error

__all__ = ["create_engine", "database_url", "open_database", "sqlite_path"]

_ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
_SYNC_ALIASES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}

#: Milliseconds a SQLite connection waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def database_url(settings: Settings) -> str:
    """The database URL to use (see the module docstring). Raises `ConfigError` if unusable."""
    if settings.database_url is not None and settings.database_url.get_secret_value():
        return normalise_url(settings.database_url.get_secret_value())
    return f"sqlite+aiosqlite:///{settings.coinharvest_db.expanduser().resolve()}"


def normalise_url(raw: str) -> str:
    """`raw` with an async driver; `ConfigError` for an unparsable URL or a sync driver."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: e.g. a non-numeric port
        raise ConfigError(
            f"DATABASE_URL={safe_url(raw)!r} is invalid: must be a sqlite+aiosqlite:///PATH "
            "or postgresql+asyncpg://USER:PASSWORD@HOST/DB URL"
        ) from None
    if url.drivername.startswith("sqlite") and url.database in (None, "", ":memory:"):
        raise ConfigError(
            f"DATABASE_URL={safe_url(raw)!r} is invalid: must name a database file "
            "(an in-memory database would keep nothing)"
        )
    backend, _, driver = url.drivername.partition("+")
    backend = _SYNC_ALIASES.get(backend, backend)
    wanted = _ASYNC_DRIVERS.get(backend)
    if wanted is None:
        raise ConfigError(
            f"DATABASE_URL={safe_url(raw)!r} is invalid: must be a sqlite+aiosqlite:///PATH "
            "or postgresql+asyncpg://USER:PASSWORD@HOST/DB URL"
        )
    if driver and driver != wanted:
        raise ConfigError(
            f"DATABASE_URL={safe_url(raw)!r} is invalid: use the async driver "
            f"{backend}+{wanted}://, not {backend}+{driver}://"
        )
    return url.set(drivername=f"{backend}+{wanted}").render_as_string(hide_password=False)


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL, in-memory or ``file:`` URI databases."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def create_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine for `url` (already normalised), tuned per backend (module docstring).

    Raises `ConfigError` when the driver is not installed (asyncpg is the ``postgres`` extra).
    """
    parsed = make_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            # The pool's rollback of every returned connection is `_reset_sqlite`'s own.
            engine = create_async_engine(parsed, pool_reset_on_return=None)
            _tune_sqlite(engine)
            return engine
        return create_async_engine(
            parsed, pool_size=pool_size, max_overflow=0, pool_pre_ping=True, pool_timeout=60
        )
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"DATABASE_URL={safe_url(url)!r} needs the {exc.name} driver: "
            "pip install 'coinharvest[postgres]'"
        ) from None


async def open_database(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An engine for `url`, checked reachable and migrated to the newest schema.

    :raises ConfigError: bad URL or missing driver.
    :raises StoreError: unreachable, not a database, not writable when it needs migrating;
        one line naming the URL.
    """
    url = normalise_url(url)
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise StoreError(f"cannot open database {path}: directory {path.parent} does not exist")
    engine = create_engine(url, pool_size=pool_size)
    try:
        with translate(f"cannot open database {safe_url(url)}"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        with translate(f"cannot migrate database {safe_url(url)}"):
            await upgrade(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # SQLAlchemy emits BEGIN itself (below); the driver must not autocommit DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")
            # A read-only file keeps its journal mode; the first write will say why.
            with contextlib.suppress(Exception):
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        _begin(conn)

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, record: ConnectionPoolEntry, state: Any) -> None:
        _reset_sqlite(dbapi_connection, record, state)


#: Pool-entry flag: a BEGIN was sent on this connection and has not been seen to finish.
_BEGIN_SENT = "coinharvest_begin_sent"


def _reset_sqlite(dbapi_connection: Any, record: ConnectionPoolEntry, state: Any) -> None:
    """Roll back a connection going back to the pool if it is in a transaction: SQLAlchemy's
    own reset rolls back every time, a trip to aiosqlite's thread after every commit, where
    the driver knows without one whether a transaction is open."""
    if not state.asyncio_safe:  # discarded by garbage collection: the pool terminates it
        return
    driver = None if record is None else record.driver_connection
    begun = record is not None and record.info.pop(_BEGIN_SENT, False)
    # `begun`: a BEGIN was sent and its caller cancelled before it finished; it may still
    # run on aiosqlite's thread after this check, so roll back (queued behind it) anyway.
    if driver is None or driver.in_transaction or begun:
        dbapi_connection.rollback()


def _begin(conn: Any) -> None:
    """``BEGIN`` on aiosqlite's connection itself: one trip to its thread, where a statement
    through SQLAlchemy costs three (cursor, execute, close), in every transaction. A failure
    is raised as SQLAlchemy's error for it, as a statement's would be."""
    info = conn.connection.info
    info[_BEGIN_SENT] = True  # until it is known to have run (see `_reset_sqlite`)
    try:
        await_only(conn.connection.driver_connection.execute("BEGIN"))
    except Exception as exc:
        raise_driver_error(conn.dialect, "BEGIN", None, exc)
    info.pop(_BEGIN_SENT, None)
