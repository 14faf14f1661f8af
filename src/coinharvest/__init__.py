"""coinharvest: collect crypto coin metrics from rate-limited APIs, concurrently and politely.

The public API, importable from here (loaded on first use, so ``import coinharvest`` stays
cheap): `Engine` and its hooks `ResultSink` / `EngineObserver`, `RetryPolicy`; `Source` (the
contract every upstream implements) and `FetchResult`; `Store` (SQLite / PostgreSQL);
the value objects `Coin`, `Observation`, `CoinAnswer`, `CoinResult`, `RunSummary`,
`SourceLimits`; and the error tree rooted at `CoinharvestError`. docs/ARCHITECTURE.md shows
how the packages fit.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ("Engine", "EngineObserver", "MemorySink", "ResultSink", "RetryPolicy"),
        "coinharvest.engine",
    ),
    **dict.fromkeys(("FetchResult", "Source"), "coinharvest.sources.base"),
    "Store": "coinharvest.storage.store",
    **dict.fromkeys(
        ("Coin", "CoinAnswer", "CoinResult", "Observation", "RunSummary", "SourceLimits"),
        "coinharvest.models",
    ),
    **dict.fromkeys(
        (
            "BadResponse",
            "Blocked",
            "ClientError",
            "CoinharvestError",
            "ConfigError",
            "PermanentError",
            "RateLimited",
            "SourceError",
            "StoreError",
            "TransientError",
            "UnknownCoin",
        ),
        "coinharvest.errors",
    ),
}

__all__ = [
    "BadResponse",
    "Blocked",
    "ClientError",
    "Coin",
    "CoinAnswer",
    "CoinResult",
    "CoinharvestError",
    "ConfigError",
    "Engine",
    "EngineObserver",
    "FetchResult",
    "MemorySink",
    "Observation",
    "PermanentError",
    "RateLimited",
    "ResultSink",
    "RetryPolicy",
    "RunSummary",
    "Source",
    "SourceError",
    "SourceLimits",
    "Store",
    "StoreError",
    "TransientError",
    "UnknownCoin",
    "__version__",
]

if TYPE_CHECKING:
    __version__: str

    from coinharvest.engine import Engine, EngineObserver, MemorySink, ResultSink, RetryPolicy
    from coinharvest.errors import (
        BadResponse,
        Blocked,
        ClientError,
        CoinharvestError,
        ConfigError,
        PermanentError,
        RateLimited,
        SourceError,
        StoreError,
        TransientError,
        UnknownCoin,
    )
    from coinharvest.models import (
        Coin,
        CoinAnswer,
        CoinResult,
        Observation,
        RunSummary,
        SourceLimits,
    )
    from coinharvest.sources.base import FetchResult, Source
    from coinharvest.storage.store import Store


def _version() -> str:
    """The installed distribution's version (importlib.metadata costs ~25 ms: only on use)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("coinharvest")
    except PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "0.0.0"


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'coinharvest' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
