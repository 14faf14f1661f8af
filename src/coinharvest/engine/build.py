"""Builds the long-lived objects from settings: sources, the engine. No I/O at import time."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

from coinharvest.config import Settings
from coinharvest.engine.adaptive import AdaptiveOptions, key_id
from coinharvest.engine.engine import Engine
from coinharvest.engine.hooks import EngineObserver, LimitStore, ResultSink
from coinharvest.engine.retry import RetryPolicy
from coinharvest.errors import ConfigError
from coinharvest.sources.base import Source

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from coinharvest.engine.shared_limits import SharedLimits

__all__ = ["build_engine"]

#: How long a shared-limits lease outlives the job timeout (only a crashed process's lease
#: should ever expire; `engine/shared_limits.py`).
LEASE_MARGIN_S = 30.0


def build_engine(
    settings: Settings,
    sources: Mapping[str, Source],
    sink: ResultSink | None = None,
    observer: EngineObserver | None = None,
    limit_store: LimitStore | None = None,
    database: AsyncEngine | None = None,
) -> Engine:
    """An engine over `sources` with every limit, batch size and retry setting from `settings`.

    `observer` (e.g. the service's Prometheus metrics) is told about every job and coin;
    `limit_store` (the `Store`) keeps learned limits and counts requests for quotas;
    `database` (the store's engine): ``SHARED_LIMITS=on`` shares the limits in it (PostgreSQL).
    """
    from coinharvest.sources.registry import effective_batch_sizes, effective_limits

    delay_ms = settings.delay_between_coins_ms or 0.0
    job_timeout_s = settings.http_timeout_seconds * 2 + 5  # a safety net above the HTTP timeout
    return Engine(
        sources,
        max_concurrency=settings.max_collection_concurrency,
        limits=effective_limits(settings, sources),
        batch_sizes=effective_batch_sizes(settings, sources),
        pause_after_job_s=delay_ms / 1000.0,
        # MAX_RETRIES counts retries after the first attempt (0: no retries).
        retry=RetryPolicy(
            max_attempts=settings.max_retries + 1,
            max_pause_s=settings.max_cooldown_seconds,
            rng=random.Random(),
        ),
        job_timeout_s=job_timeout_s,
        sink=sink,
        observer=observer,
        breaker_failures=settings.breaker_failures,
        breaker_cooloff_s=settings.breaker_cooloff_seconds,
        adaptive=settings.adaptive_limits
        and AdaptiveOptions({name: key_id(settings.source(name).api_key) for name in sources}),
        limit_store=limit_store,
        shared=_shared_limits(settings, sources, database, job_timeout_s + LEASE_MARGIN_S),
    )


def _shared_limits(
    settings: Settings, sources: Mapping[str, Source], database: AsyncEngine | None, lease_s: float
) -> SharedLimits | None:
    """The shared limiter when ``SHARED_LIMITS=on`` (None: off)."""
    if not settings.shared_limits:
        return None
    from coinharvest.engine.shared_limits import SharedLimits, check_shared_limits_url

    if database is None:
        raise ConfigError("SHARED_LIMITS=on: this command has no database to share limits through")
    check_shared_limits_url(True, database.url.drivername)
    keys = {name: key_id(settings.source(name).api_key) for name in sources}
    return SharedLimits(database, keys, lease_s=lease_s)
