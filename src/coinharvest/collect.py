"""One collection run from settings: build sources, run the engine, close everything."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from coinharvest.cli.progress import ProgressSink, make_progress
from coinharvest.config import Settings
from coinharvest.engine.build import build_engine
from coinharvest.engine.hooks import ResultSink
from coinharvest.models import Coin, RunSummary

__all__ = ["collect_once"]


async def collect_once(
    settings: Settings,
    coins: Sequence[Coin],
    *,
    sink: ResultSink | None = None,  # None: the configured store (DATABASE_URL/COINHARVEST_DB)
    base_urls: dict[str, str] | None = None,
    tty: bool = False,
    console: Console | None = None,
    trigger: str = "manual",
) -> RunSummary:
    """Collect `coins` once from the sources they name; results go to `sink` as they complete.

    With `tty`, a progress bar is drawn on `console` while the run goes on.
    """
    if sink is None:
        from coinharvest.storage.factory import store_from_settings

        async with store_from_settings(settings) as store:
            summary = await collect_once(
                settings,
                coins,
                sink=store,
                base_urls=base_urls,
                tty=tty,
                console=console,
                trigger=trigger,
            )
            summary.coins_unsaved = len(store.unsaved(summary.run_id))
            return summary
    from coinharvest.sources.registry import build_sources

    names = {src for coin in coins for chain in coin.chains for src in chain}
    sources = build_sources(settings, names=names, base_urls=base_urls)
    inner = sink
    try:
        if not tty:
            return await build_engine(settings, sources, inner).run(coins, trigger=trigger)
        with make_progress(console) as progress:
            engine = build_engine(settings, sources, ProgressSink(inner, progress))
            return await engine.run(coins, trigger=trigger)
    finally:
        for source in sources.values():
            await source.aclose()
