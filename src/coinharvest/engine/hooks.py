"""The engine's hooks: where results go (`ResultSink`), who watches (`EngineObserver`), and
where learned limits and quota counts are kept (`LimitStore`).

**ResultSink.** The engine calls a sink at three moments of a run. Contract:

- `run_started` once, before any job starts;
- `jobs_recorded` with the job attempts since the last call, before each `coin_completed`;
- `coin_completed` once per coin, the moment its last job ends (from the job's own task, so
  several may be in progress at once; an implementation must be safe for that). A coin's
  observations and result arrive together and must be stored together or not at all;
- `run_finished` once, with the summary, after every `coin_completed` has returned.

A sink that raises is not retried by the engine: the engine logs the error, counts it in
``RunSummary.store_errors`` and goes on. Retrying belongs to the sink (it knows which errors
are worth it). `MemorySink` keeps results in memory (tests, `verify`, the benchmarks).

**EngineObserver.** Called as a run goes on, for metrics (Prometheus) and live views. Every
method is called synchronously on the event loop, must be cheap and must not raise (an
observer's error would be a bug in the observer; the engine does not catch it).
`NullObserver`, the default, ignores every call.

**LimitStore.** Where the engine keeps what it learned of each source's limits between runs
and restarts, and where it reads how many requests each source was sent today and this
month (for quotas). `coinharvest.storage.Store` is one. Called between runs only: before a
run (load once, count every run) and after it (save).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from coinharvest.models import Coin, CoinResult, JobRecord, LearnedLimit, RunSummary

__all__ = ["EngineObserver", "LimitStore", "MemorySink", "NullObserver", "ResultSink"]


class ResultSink(Protocol):
    """Receives a run's results as they happen (see the module docstring for the contract)."""

    async def run_started(
        self, run_id: str, trigger: str, started_at: datetime, coins: Sequence[Coin]
    ) -> None:
        """A run began; `coins` are the coins it will collect."""

    async def jobs_recorded(self, run_id: str, jobs: Sequence[JobRecord]) -> None:
        """Job attempts that started, ended or were deferred since the last call, so far.

        Called just before each `coin_completed` (a store may write them in that coin's
        transaction, so a run cut short still shows what it did); the records may change
        later (an attempt ends), and `run_finished` carries the whole timeline.
        """

    async def coin_completed(self, run_id: str, result: CoinResult) -> None:
        """One coin is complete; store its result and observations together."""

    async def run_finished(self, summary: RunSummary) -> None:
        """The run ended; `summary` has its totals and status."""


class MemorySink:
    """Keeps everything in lists; for tests and for `collect` without a store."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, datetime, int]] = []
        self.results: list[tuple[str, CoinResult]] = []
        self.summaries: list[RunSummary] = []

    async def run_started(
        self, run_id: str, trigger: str, started_at: datetime, coins: Sequence[Coin]
    ) -> None:
        """Record the start."""
        self.started.append((run_id, trigger, started_at, len(coins)))

    async def jobs_recorded(self, run_id: str, jobs: Sequence[JobRecord]) -> None:
        """Nothing to do: the summary has the whole timeline."""

    async def coin_completed(self, run_id: str, result: CoinResult) -> None:
        """Record the coin's result."""
        self.results.append((run_id, result))

    async def run_finished(self, summary: RunSummary) -> None:
        """Record the summary."""
        self.summaries.append(summary)


class EngineObserver(Protocol):
    """What the engine reports while it runs."""

    def job_started(self, source: str, waited_s: float) -> None:
        """A request to `source` started after waiting `waited_s` in its lane."""

    def job_finished(self, source: str, outcome: str, duration_s: float) -> None:
        """A request ended. `outcome`: the HTTP status ("200", "429", "503", …) or an
        error kind ("timeout", "error") when there was no HTTP answer."""

    def coin_completed(self, result: CoinResult) -> None:
        """A coin completed (before it is stored)."""

    def run_finished(self, summary: RunSummary) -> None:
        """A run ended."""

    def circuit_changed(self, source: str, state: str) -> None:
        """`source`'s circuit breaker changed state: ``"closed"`` (in use), ``"open"`` (its
        connections keep failing: sent nothing until a probe), ``"half_open"`` (probing)."""


class NullObserver:
    """Observes nothing: every hook of `EngineObserver` is ignored."""

    def job_started(self, source: str, waited_s: float) -> None:
        pass

    def job_finished(self, source: str, outcome: str, duration_s: float) -> None:
        pass

    def coin_completed(self, result: CoinResult) -> None:
        pass

    def run_finished(self, summary: RunSummary) -> None:
        pass

    def circuit_changed(self, source: str, state: str) -> None:
        pass


class LimitStore(Protocol):
    """Keeps learned limits and counts requests sent (see the module docstring)."""

    async def load_learned_limits(self) -> list[LearnedLimit]:
        """Every learned limit saved, for any source and key."""
        ...

    async def save_learned_limits(self, limits: Sequence[LearnedLimit]) -> None:
        """Save `limits`, replacing those of the same source and key."""

    async def requests_since(self, since: datetime) -> dict[str, int]:
        """Requests started at or after `since`, per source (by any run of any process)."""
        ...
