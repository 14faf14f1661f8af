"""Builds the long-lived objects from settings: sources, the engine. No I/O at import time."""

from __future__ import annotations

import random
from collections.abc import Mapping

from coinharvest.config import Settings
from coinharvest.engine.adaptive import AdaptiveOptions, key_id
from coinharvest.engine.engine import Engine
from coinharvest.engine.hooks import EngineObserver, LimitStore, ResultSink
from coinharvest.engine.retry import RetryPolicy
from coinharvest.sources.base import Source

__all__ = ["build_engine"]


def build_engine(
    settings: Settings,
    sources: Mapping[str, Source],
    sink: ResultSink | None = None,
    observer: EngineObserver | None = None,
    limit_store: LimitStore | None = None,
) -> Engine:
    """An engine over `sources` with every limit, batch size and retry setting from `settings`.

    `observer` (e.g. the service's Prometheus metrics) is told about every job and coin;
    `limit_store` (the `Store`) keeps learned limits and counts requests for quotas.
    """
    from coinharvest.sources.registry import effective_batch_sizes, effective_limits

    delay_ms = settings.delay_between_coins_ms or 0.0
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
        # A safety net above the HTTP timeout: a source that hangs past it is a bug.
        job_timeout_s=settings.http_timeout_seconds * 2 + 5,
        sink=sink,
        observer=observer,
        breaker_failures=settings.breaker_failures,
        breaker_cooloff_s=settings.breaker_cooloff_seconds,
        adaptive=settings.adaptive_limits
        and AdaptiveOptions({name: key_id(settings.source(name).api_key) for name in sources}),
        limit_store=limit_store,
    )
