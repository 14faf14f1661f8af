"""The bookkeeping of one run: each coin's state, the job timeline, the counters, the summary.

`RunBook` holds no asyncio state and starts nothing; the run tells it what happened (a job
started, a coin's part of an answer arrived, a chain failed, a job was deferred) and asks it
which coins became complete and, at the end, for the `RunSummary`. Coins that fail at a
source and have a next one in their chain are queued in `fallbacks` (next source -> coins)
for the run to send on, batched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from coinharvest.engine.completion import CoinState, next_source
from coinharvest.engine.hooks import EngineObserver
from coinharvest.engine.lane import Job
from coinharvest.errors import SourceError
from coinharvest.logs import get_logger
from coinharvest.models import (
    Coin,
    CoinAnswer,
    CoinResult,
    CoinStatus,
    JobRecord,
    JobStatus,
    Observation,
    RunStatus,
    RunSummary,
)
from coinharvest.plausibility import screen
from coinharvest.sources.base import CoinOutcome, FetchResult

__all__ = ["RunBook"]

log = get_logger("engine")


class RunBook:
    """What one run has done so far (see the module docstring)."""

    def __init__(self, coins: Sequence[Coin], observer: EngineObserver, t0: float) -> None:
        self.coins = list(coins)
        self.observer = observer
        self.t0 = t0
        self.states = {c.symbol: CoinState(c, open_chains=len(c.chains)) for c in self.coins}
        self.records: list[JobRecord] = []
        self.results: list[CoinResult] = []
        self.requests = self.rate_limited = self.retries = self.store_errors = 0
        self.in_flight = self.max_in_flight = 0
        #: Next source -> coins falling back to it, waiting to be queued there.
        self.fallbacks: dict[str, list[Coin]] = {}
        self._touched: set[str] = set()  # coins whose state changed since `pop_complete`
        self._changed: dict[int, JobRecord] = {}  # records new or changed since `take_changed`

    # ----------------------------------------------------------------- jobs

    def job_started(self, job: Job, now: float) -> JobRecord:
        """Count a job's new attempt, started at `now`; return its timeline record."""
        job.attempts += 1
        job.started_at = now
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        record = JobRecord(
            job.id,
            job.source,
            job.symbols,
            job.attempts,
            job.queued_at - self.t0,
            now - self.t0,
            None,
            JobStatus.OK,
        )
        self.records.append(record)
        self._changed[id(record)] = record
        self.observer.job_started(job.source, max(0.0, now - job.queued_at))
        for coin in job.coins:
            if self.states[coin.symbol].mark_started(now):
                log.info("📊 Collecting %s (%s)...", coin.name, coin.symbol)
        return record

    def job_ended(self, record: JobRecord) -> None:
        """A job attempt ended (its record has its end time and status)."""
        self.in_flight -= 1
        self._changed[id(record)] = record

    def take_changed(self) -> list[JobRecord]:
        """The job records new or changed since the last call."""
        changed, self._changed = list(self._changed.values()), {}
        return changed

    def job_deferred(self, job: Job, reason: str, now: float) -> None:
        """A queued job will not start in this run: its coins' chains end deferred.

        Recorded as the attempt it did not make (``attempts + 1``), beside those it made.
        """
        self._record(
            JobRecord(
                job.id,
                job.source,
                job.symbols,
                job.attempts + 1,
                job.queued_at - self.t0,
                None,
                now - self.t0,
                JobStatus.DEFERRED,
                reason,
            )
        )
        for coin in job.coins:
            self.states[coin.symbol].chain_deferred(f"{job.source}: {reason}")
            self._touched.add(coin.symbol)

    def _record(self, record: JobRecord) -> None:
        self.records.append(record)
        self._changed[id(record)] = record

    # ----------------------------------------------------------------- coins

    def fail_now(self, coin: Coin, error: str) -> None:
        """Fail `coin` before anything is asked (e.g. it names no source)."""
        state = self.states[coin.symbol]
        state.errors.append(error)
        state.failed = True
        self._touched.add(coin.symbol)

    def chain_error(self, coin: Coin, source: str, error: str) -> None:
        """`coin` failed at `source`: fall back to the chain's next source, or end the chain."""
        state = self.states[coin.symbol]
        self._touched.add(coin.symbol)
        nxt = next_source(coin, source)
        if nxt is None:
            state.chain_failed(source, error)
            return
        state.note_fallback(source, error)
        log.info("↪ %s: %s failed, asking %s", coin.symbol, source, nxt)
        self.fallbacks.setdefault(nxt, []).append(coin)

    def deliver_job(
        self, job: Job, record: JobRecord, answer: FetchResult, redact: Callable[[str], str]
    ) -> None:
        """Deliver each coin's part of a job's answer (see `deliver`)."""
        failed = sum(
            not self.deliver(job.source, coin, answer.get(coin.symbol), redact)
            for coin in job.coins
        )
        if failed:
            record.error = f"{failed} of {len(job.coins)} coins failed"

    def deliver(
        self,
        source: str,
        coin: Coin,
        got: CoinOutcome | None,
        redact: Callable[[str], str] = str,
    ) -> bool:
        """Take `coin`'s part of an answer from `source`; False if it failed there.

        Implausible values are dropped with a note; an answer left with no value at all
        fails the coin at this source, saying why (it may fall back). Every text from the
        source (its error, its notes) passes `redact` (the source's) before it is kept.
        """
        if got is None or isinstance(got, SourceError):
            error = str(got) if got is not None else f"{source}: no result for {coin.symbol}"
            self.chain_error(coin, source, redact(error))
            return False
        observations, notes = (
            (got.observations, got.notes) if isinstance(got, CoinAnswer) else (got, [])
        )
        kept, implausible = screen(_own(observations, coin))
        state = self.states[coin.symbol]
        if notes or implausible:
            state.note([redact(note) for note in notes + implausible])
        if not kept:
            self.chain_error(coin, source, f"{source}: the answer had no usable value")
            return False
        state.delivered(source, kept)
        self._touched.add(coin.symbol)
        return True

    def pop_complete(self, now: float) -> list[CoinResult]:
        """The coins that became complete since the last call, as results (each once)."""
        touched, self._touched = self._touched, set()
        done = [
            self.states[sym] for sym in touched if sym in self.states and self.states[sym].complete
        ]
        results = []
        for state in done:
            del self.states[state.coin.symbol]
            result = state.result(now)
            self.results.append(result)
            self.observer.coin_completed(result)
            _log_result(result)
            results.append(result)
        return results

    # ----------------------------------------------------------------- summary

    def summary(
        self,
        run_id: str,
        trigger: str,
        started_at: datetime,
        duration_s: float,
        *,
        cancelled: bool,
        stopping: bool,
    ) -> RunSummary:
        """The run's totals (the book is not changed).

        Coins still open (a cancelled run) count as deferred; results are in the coins' own
        order (priority, then file order), not completion order. The run is ``interrupted``
        when cancelled, or stopped with coins left deferred.
        """
        results = self._ordered(self.results + self._still_open())
        counts = {s: sum(1 for r in results if r.status is s) for s in CoinStatus}
        interrupted = cancelled or (stopping and counts[CoinStatus.DEFERRED] > 0)
        return RunSummary(
            run_id=run_id,
            trigger=trigger,
            status=_status(counts, len(results), interrupted),
            started_at=started_at,
            duration_s=duration_s,
            coins_total=len(results),
            coins_ok=counts[CoinStatus.OK],
            coins_failed=counts[CoinStatus.FAILED],
            coins_deferred=counts[CoinStatus.DEFERRED],
            requests=self.requests,
            rate_limited=self.rate_limited,
            retries=self.retries,
            max_in_flight=self.max_in_flight,
            store_errors=self.store_errors,
            results=results,
            jobs=list(self.records),
        )

    def _still_open(self) -> list[CoinResult]:
        """Coins not complete (only when cancelled), as deferred; nothing of them is stored."""
        return [
            CoinResult(
                state.coin.symbol,
                state.coin.name,
                CoinStatus.DEFERRED,
                state.started_at,
                0.0,
                state.attempts,
                tuple(state.sources),
                errors=["interrupted before this coin completed"],
            )
            for state in self.states.values()
        ]

    def _ordered(self, results: list[CoinResult]) -> list[CoinResult]:
        order = {c.symbol: i for i, c in enumerate(self.coins)}
        return sorted(results, key=lambda r: order.get(r.symbol, len(order)))


def _status(counts: dict[CoinStatus, int], total: int, interrupted: bool) -> RunStatus:
    if interrupted:
        return RunStatus.INTERRUPTED
    if counts[CoinStatus.OK] == total:
        return RunStatus.COMPLETED
    return RunStatus.FAILED if counts[CoinStatus.OK] == 0 else RunStatus.PARTIAL


def _own(observations: list[Observation], coin: Coin) -> list[Observation]:
    """Keep only observations about `coin` (a source must not speak for other coins)."""
    return [o for o in observations if o.symbol == coin.symbol]


def _log_result(result: CoinResult) -> None:
    ms = round(result.duration_s * 1000)
    if result.status is CoinStatus.OK:
        log.info("✅ %s Success in %dms", result.symbol, ms)
    elif result.status is CoinStatus.FAILED:
        log.info("❌ %s Failed in %dms: %s", result.symbol, ms, result.error)
    else:
        log.info("⏸ %s Deferred: %s", result.symbol, result.error)
