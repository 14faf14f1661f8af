"""The project's error tree. Every error coinharvest raises derives from `CoinharvestError`.

::

    CoinharvestError
    ├── ConfigError              bad setting, coins file or CLI value (exit status 2)
    ├── SourceError              a source could not deliver (carries `source`)
    │   ├── RateLimited          HTTP 429 / 503+Retry-After: pause the whole source
    │   ├── TransientError       worth retrying: timeouts, connection errors, 5xx
    │   └── PermanentError       not worth retrying in this run
    │       ├── ClientError      4xx other than 429 (status + upstream message, keys redacted)
    │       ├── BadResponse      malformed or unexpected JSON (names the field)
    │       ├── UnknownCoin      the source does not know this coin's id
    │       └── Blocked          the upstream refuses us (IP blocked, no key): no more
    │                            requests to that source in this run
    └── StoreError               the store could not save or read

Errors build their message in ``__init__`` and carry their context as attributes, so
logs and stored results say the same thing.
"""

from __future__ import annotations

__all__ = [
    "BadResponse",
    "Blocked",
    "ClientError",
    "CoinharvestError",
    "ConfigError",
    "OutputError",
    "PermanentError",
    "RateLimited",
    "SourceError",
    "StoreError",
    "TransientError",
    "UnknownCoin",
]


class CoinharvestError(Exception):
    """Base of every error raised by coinharvest."""


class ConfigError(CoinharvestError):
    """A setting, coins file or command-line value is invalid; the message is one line."""


class StoreError(CoinharvestError):
    """The store could not save or read."""


class OutputError(CoinharvestError):
    """A command's output stream failed (not a reader that went away: a full disk, EIO)."""


class SourceError(CoinharvestError):
    """A source could not deliver. `source` names it; the message never contains a key."""

    def __init__(self, source: str, message: str, *, named: bool = False) -> None:
        self.source = source
        self.message = message
        # `named`: the message already names the source, so don't prefix it again.
        super().__init__(message if named else f"{source}: {message}")


class RateLimited(SourceError):
    """The source said "too many requests". `retry_after` is seconds to wait, if it said."""

    def __init__(
        self, source: str, retry_after: float | None, message: str = "rate limited"
    ) -> None:
        self.retry_after = retry_after
        hint = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
        super().__init__(source, f"{message}{hint}")


class TransientError(SourceError):
    """A failure that may pass: timeout, connection error, 5xx. Retried with back-off."""

    def __init__(
        self,
        source: str,
        message: str,
        retry_after: float | None = None,
        *,
        status: int | None = None,
        timed_out: bool = False,
        unreachable: bool = False,
    ) -> None:
        self.retry_after = retry_after
        #: The HTTP status when there was an answer (5xx), None for timeouts and resets.
        self.status = status
        #: No answer in time (an HTTP timeout, or the engine's job timeout).
        self.timed_out = timed_out
        #: No connection could be made (refused, DNS, TLS, connect timeout): the request
        #: never reached the upstream. Feeds the engine's circuit breaker.
        self.unreachable = unreachable
        super().__init__(source, message)


class PermanentError(SourceError):
    """A failure that will not pass by retrying in this run."""


class ClientError(PermanentError):
    """An HTTP 4xx other than 429: the request itself is wrong (bad key, bad parameter)."""

    def __init__(self, source: str, status: int, message: str) -> None:
        self.status = status
        super().__init__(source, f"HTTP {status}: {message}")


class BadResponse(PermanentError):
    """The response was not what the source's protocol promises (malformed JSON, missing field)."""


class UnknownCoin(PermanentError, LookupError):
    """The source does not know the coin id it was asked for."""

    def __init__(self, source: str, coin_id: str) -> None:
        self.coin_id = coin_id
        super().__init__(source, f"unknown to {source}: {coin_id}", named=True)


class Blocked(PermanentError):
    """The upstream refuses this client as a whole (IP blocked, keyless access closed).

    Retrying would only prolong the block, so the engine sends nothing more to the source
    for the rest of the run: its queued and later jobs fail at once with this message.
    """
