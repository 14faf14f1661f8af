"""SQLite: a many-row statement in one trip to aiosqlite's thread instead of three.

Through SQLAlchemy, every statement on aiosqlite is three calls to the thread that owns the
connection (create a cursor, execute, close it), and each call costs a wake-up of that
thread and then of the event loop: 150-200 µs of CPU apiece on a busy VM, most of a small
transaction's cost. `execute_many` sends the same SQL, with the same values bound as
SQLAlchemy binds them (each column type's own bind processor), as one
``executemany`` on the driver connection, in the caller's transaction. It also skips
SQLAlchemy's per-row parameter building, the other large cost of a batch.

Kept from SQLAlchemy's path: ``before_cursor_execute`` listeners see every statement (the
tests' failure seam is one), and a database error is raised as SQLAlchemy's exception for
it (``OperationalError``, ``IntegrityError``, ...), so retries and messages
(`failures`) do not change. PostgreSQL statements go through SQLAlchemy as before.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

__all__ = ["execute_many", "raise_driver_error"]

#: (SQL, a row's values in parameter order, (position, bind processor) where one is needed).
_Prepared = tuple[str, Callable[[Any], Any], list[tuple[int, Callable[[Any], Any]]]]


async def execute_many(
    conn: AsyncConnection,
    stmt: Insert,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
) -> None:
    """``conn.execute(stmt, rows)``: on SQLite in one trip (module docstring).

    The columns inserted are `columns`, or else every key of the rows (all rows have the
    same keys, as for an executemany); with `columns`, rows may hold other keys too.
    :raises sqlalchemy.exc.DBAPIError: the database refused the statement.
    """
    if not rows:
        return
    dialect = conn.dialect
    keys = tuple(rows[0] if columns is None else columns)
    if dialect.name != "sqlite":
        if columns is not None:
            rows = [{key: row[key] for key in keys} for row in rows]
        await conn.execute(stmt, rows)
        return
    sql, values, processors = _prepare(dialect, stmt, keys)
    try:
        params = _bind(rows, values, processors)
    except Exception as exc:  # a value its column cannot take (a naive datetime, ...)
        # As SQLAlchemy reports it: a StatementError is an SQLAlchemyError the store handles.
        raise sa_exc.StatementError(str(exc), sql, None, exc) from exc
    sync = conn.sync_connection
    assert sync is not None  # a connection in use
    sync.dispatch.before_cursor_execute(sync, None, sql, params, None, True)
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        await driver.executemany(sql, params)
    except Exception as exc:
        raise_driver_error(dialect, sql, params, exc)


def _bind(
    rows: Sequence[Mapping[str, Any]],
    values: Callable[[Any], Any],
    processors: list[tuple[int, Callable[[Any], Any]]],
) -> list[Any]:
    """Each row's values in parameter order, through its columns' bind processors."""
    params = [values(row) for row in rows]
    if processors:
        for i, row_values in enumerate(params):
            bound = list(row_values)
            for at, process in processors:
                bound[at] = process(bound[at])
            params[i] = bound
    return params


def raise_driver_error(dialect: Dialect, sql: str, params: Any, exc: Exception) -> NoReturn:
    """Raise `exc`, an aiosqlite or sqlite3 error, as SQLAlchemy's exception for it."""
    if isinstance(exc, ValueError):  # aiosqlite: "no active connection", "Connection closed"
        raise sa_exc.OperationalError(sql, params, exc) from exc
    base = dialect.loaded_dbapi.Error
    if isinstance(exc, base):
        raise sa_exc.DBAPIError.instance(sql, params, exc, base) from exc
    raise exc


@functools.lru_cache(maxsize=64)  # a few statements per engine
def _prepare(dialect: Dialect, stmt: Insert, keys: tuple[str, ...]) -> _Prepared:
    """The SQL SQLAlchemy runs for `stmt` with rows of `keys`, and how to bind them."""
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    names = list(compiled.positiontup or ())
    columns = stmt.table.c
    # The type as the dialect binds it (SQLite's DATETIME formats the text it stores).
    processors = [
        (at, columns[n].type.dialect_impl(dialect).bind_processor(dialect))
        for at, n in enumerate(names)
    ]
    # itemgetter of one name returns the value, not a 1-tuple: keep it a sequence.
    getter = operator.itemgetter(*names) if len(names) > 1 else lambda r: (r[names[0]],)
    return compiled.string, getter, [(at, p) for at, p in processors if p is not None]
