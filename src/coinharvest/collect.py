"""One collection run from settings: build sources, run the engine, close everything.

Called by `coinharvest collect`, `coinharvest demo` and the tests. It knows nothing of the
terminal: a caller that wants a live view passes `decorate`, which wraps the sink for the
run's duration (the CLI's progress bar does that).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from coinharvest.config import Settings
from coinharvest.engine.build import build_engine
from coinharvest.engine.hooks import ResultSink
from coinharvest.models import Coin, RunSummary

if TYPE_CHECKING:
    from coinharvest.engine import Engine
    from coinharvest.storage.store import Store

__all__ = ["SinkDecorator", "collect_once"]

#: Wraps the run's sink for the run's duration (e.g. to drive a progress bar).
SinkDecorator = Callable[[ResultSink], AbstractContextManager[ResultSink]]


async def collect_once(
    settings: Settings,
    coins: Sequence[Coin],
    *,
    sink: ResultSink | None = None,  # None: the configured store (DATABASE_URL/COINHARVEST_DB)
    base_urls: dict[str, str] | None = None,
    decorate: SinkDecorator | None = None,
    trigger: str = "manual",
) -> RunSummary:
    """Collect `coins` once from the sources they name; results go to `sink` as they complete.

    Without `sink`, the configured store is opened for the run (it also keeps the learned
    limits and counts requests for quotas, and shares the limits with ``SHARED_LIMITS=on``),
    and the summary says how many coins it could not save (``coins_unsaved``); then data
    older than RETENTION_DAYS is pruned.

    :raises ConfigError: ``SHARED_LIMITS=on`` without PostgreSQL (before opening anything).
    """
    if sink is not None:
        return await _collect(settings, coins, sink, None, base_urls, decorate, trigger)
    from coinharvest.engine.shared_limits import check_shared_limits_url
    from coinharvest.storage.database import database_url
    from coinharvest.storage.factory import store_from_settings
    from coinharvest.storage.retention import prune_after_run

    check_shared_limits_url(settings.shared_limits, database_url(settings))
    async with store_from_settings(settings) as store:
        summary = await _collect(settings, coins, store, store, base_urls, decorate, trigger)
        summary.coins_unsaved = len(store.unsaved(summary.run_id))
        await prune_after_run(store.engine, settings.retention_days)  # RETENTION_DAYS
        return summary


async def _collect(
    settings: Settings,
    coins: Sequence[Coin],
    sink: ResultSink,
    limit_store: Store | None,
    base_urls: dict[str, str] | None,
    decorate: SinkDecorator | None,
    trigger: str,
) -> RunSummary:
    from coinharvest.sources.base import close_sources
    from coinharvest.sources.registry import build_sources

    names = {src for coin in coins for chain in coin.chains for src in chain}
    sources = build_sources(settings, names=names, base_urls=base_urls)
    engine: Engine | None = None
    try:
        with (decorate or nullcontext)(sink) as decorated:
            engine = build_engine(
                settings,
                sources,
                decorated,
                limit_store=limit_store,
                database=None if limit_store is None else limit_store.engine,
            )
            # A one-off run always ends: jobs not started by then are deferred.
            deadline_s = settings.collect_timeout_minutes * 60.0
            return await engine.run(coins, trigger=trigger, deadline_s=deadline_s)
    finally:
        await close_sources(sources.values())
        if engine is not None and engine.shared is not None:
            await engine.shared.aclose()  # releases and cooldowns in flight, then the lock
