"""A sink wrapper that drives a Rich progress bar: coins done / total, overall and per source."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from coinharvest.engine.hooks import ResultSink
from coinharvest.models import Coin, CoinResult, JobRecord, RunSummary

__all__ = ["ProgressSink", "make_progress", "progress_bar"]


def make_progress(console: Console | None = None, transient: bool = False) -> Progress:
    """The progress display used by `collect` on a terminal."""
    return Progress(
        TextColumn("{task.description:>12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


@contextmanager
def progress_bar(inner: ResultSink, console: Console | None = None) -> Iterator[ResultSink]:
    """`inner`, wrapped to draw a progress bar on `console` while the run goes on (a
    `coinharvest.collect.SinkDecorator`)."""
    with make_progress(console) as progress:
        yield ProgressSink(inner, progress)


class ProgressSink:
    """Passes every call to `inner` and advances `progress` as coins complete.

    Per source, the bar counts the coins whose first choice for some metric family is that
    source (fallbacks are not counted twice).
    """

    def __init__(self, inner: ResultSink, progress: Progress) -> None:
        self.inner = inner
        self.progress = progress
        self._overall: TaskID | None = None
        self._by_source: dict[str, TaskID] = {}
        self._coins: dict[str, Coin] = {}

    async def run_started(
        self, run_id: str, trigger: str, started_at: datetime, coins: Sequence[Coin]
    ) -> None:
        """Create the bars, then pass the call on."""
        self._coins = {c.symbol: c for c in coins}
        self._overall = self.progress.add_task("all coins", total=len(coins))
        counts: dict[str, int] = {}
        for c in coins:
            for chain in c.chains:
                counts[chain[0]] = counts.get(chain[0], 0) + 1
        for source, n in sorted(counts.items()):
            self._by_source[source] = self.progress.add_task(source, total=n)
        await self.inner.run_started(run_id, trigger, started_at, coins)

    async def jobs_recorded(self, run_id: str, jobs: Sequence[JobRecord]) -> None:
        """Pass on."""
        await self.inner.jobs_recorded(run_id, jobs)

    async def coin_completed(self, run_id: str, result: CoinResult) -> None:
        """Store first (the inner sink), then advance the bars."""
        await self.inner.coin_completed(run_id, result)
        if self._overall is not None:
            self.progress.advance(self._overall)
        coin = self._coins.get(result.symbol)
        for chain in coin.chains if coin else ():
            if (task := self._by_source.get(chain[0])) is not None:
                self.progress.advance(task)

    async def run_finished(self, summary: RunSummary) -> None:
        """Pass the call on."""
        await self.inner.run_finished(summary)
