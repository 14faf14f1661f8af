"""Storage errors at the boundary: which failures are worth retrying, and one-line messages.

Everything the database layer raises (SQLAlchemy's ``DBAPIError`` family, the drivers'
own connection errors, ``OSError``, timeouts) is translated into `StoreError` here, in one
context manager (`translate`), with ``raise ... from exc``. Messages are one line and never
contain a password: URLs are rendered with `safe_url`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from coinharvest.errors import StoreError

__all__ = ["describe", "is_transient", "safe_url", "translate"]

#: Driver-level errors that are not DBAPI errors but mean "the connection went away".
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same write later may succeed.

    Transient: lost or refused connections, timeouts, "database is locked", disk I/O and
    read-only errors (a disk may be remounted, a lock released). Not transient: integrity and
    programming errors (the same statement would fail again).
    """
    if isinstance(exc, sa_exc.IntegrityError | sa_exc.ProgrammingError | sa_exc.DataError):
        return False
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.InternalError
        )
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    return isinstance(exc, _CONNECTION_ERRORS)


def describe(exc: BaseException) -> str:
    """The error's own message on one line, without SQLAlchemy's statement and links."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        text = str(exc.orig) or type(exc.orig).__name__
    else:
        text = str(exc) or type(exc).__name__
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first.removeprefix("(sqlite3.OperationalError) ")


def safe_url(url: str) -> str:
    """`url` with any password hidden (``postgresql+asyncpg://app:***@db/coins``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):  # ValueError: e.g. a non-numeric port
        return "<unparsable URL>"


@contextmanager
def translate(action: str) -> Iterator[None]:
    """Turn database failures inside the block into `StoreError("<action>: <reason>")`.

    `StoreError` raised inside passes through unchanged; programming errors of ours
    (TypeError, ...) are not masked.
    """
    try:
        yield
    except StoreError:
        raise
    except (sa_exc.SQLAlchemyError, OSError) as exc:  # OSError covers Timeout/ConnectionError
        raise StoreError(f"{action}: {describe(exc)}") from exc
