"""One run: plan the jobs, dispatch them, decide what each outcome means, store each coin.

`Run` is created by `Engine.run()` with the engine's parts (`RunParts`) and used once. It
composes three pieces that each own one thing: the `Dispatcher` (lanes, slots, the only
place jobs start), `execute` (one job's request), and the `RunBook` (coin states, the job
timeline, counters, the summary). What belongs to the run itself is the meaning of an
outcome: a 429 pauses the source and requeues the job, a transient error requeues it after a
back-off, a permanent error fails its coins there (they fall back where they can), a
`Blocked` source is sent nothing more; and every coin that completes goes to the sink at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Sequence
from datetime import datetime

from coinharvest.engine.access import SourceAccess
from coinharvest.engine.book import RunBook
from coinharvest.engine.dispatch import Dispatcher
from coinharvest.engine.execution import Executor, Outcome, cool_down, warn_if_capped
from coinharvest.engine.lane import Job, Lane
from coinharvest.engine.looplag import LoopLag
from coinharvest.engine.parts import RunParts
from coinharvest.errors import Blocked, RateLimited, TransientError
from coinharvest.logs import get_logger
from coinharvest.models import Coin, CoinResult, JobRecord, JobStatus, RunSummary

__all__ = ["Run"]

log = get_logger("engine")
dlog = get_logger("scheduler:dispatch")
llog = get_logger("limiter")


class Run:
    """One collection pass (see the module docstring)."""

    def __init__(
        self,
        parts: RunParts,
        coins: Sequence[Coin],
        *,
        run_id: str,
        trigger: str,
        started_at: datetime,
        deadline: float | None,
        seq: itertools.count[int],
    ) -> None:
        self.parts = parts
        self.run_id = run_id
        self.trigger = trigger
        self.started_at = started_at
        self._seq = seq
        self.t0 = parts.clock()
        self.book = RunBook(coins, parts.observer, self.t0)
        self.dispatcher = Dispatcher(
            parts.limiters,
            parts.slots,
            parts.clock,
            deadline,
        )
        self.access = SourceAccess(parts.sources, parts.breakers)
        self.executor = Executor(parts, t0=self.t0, on_free=self.dispatcher.poke)
        self.loop_lag = LoopLag()  # taken off response times before adaptive limits judge them

    # ----------------------------------------------------------------- lifecycle

    async def execute(self) -> RunSummary:
        """Plan, dispatch until every coin is complete, and summarise."""
        coins = self.book.coins
        log.info(
            "Processing %d coins with max concurrency: %d", len(coins), self.parts.slots.capacity
        )
        await self._safe_sink(
            "run_started",
            self.parts.sink.run_started(self.run_id, self.trigger, self.started_at, coins),
        )
        self._plan()
        cancelled = False
        try:
            await self.dispatcher.loop(launch=self._launch, defer=self._defer)
        except asyncio.CancelledError:
            # Cancelled from outside (e.g. a second SIGTERM): stop the jobs, but still
            # record the run as interrupted before letting the cancellation through.
            cancelled = True
            await self.dispatcher.cancel_all()
        summary = await self._finish(cancelled)
        if cancelled:
            raise asyncio.CancelledError
        return summary

    async def _finish(self, cancelled: bool) -> RunSummary:
        duration = self.parts.clock() - self.t0
        summary = self.book.summary(
            self.run_id,
            self.trigger,
            self.started_at,
            duration,
            cancelled=cancelled,
            stopping=self.dispatcher.stopping,
        )
        self.parts.observer.run_finished(summary)
        await self._safe_sink("run_finished", self.parts.sink.run_finished(summary))
        _log_summary(summary)
        return summary

    def stop(self) -> None:
        """No new starts; queued jobs are deferred when the dispatcher wakes."""
        self.dispatcher.stop()

    # ----------------------------------------------------------------- planning

    def _plan(self) -> None:
        by_source: dict[str, list[Coin]] = {}
        for coin in self.book.coins:
            if not coin.chains:
                self.book.fail_now(coin, "no source configured for this coin")
            for chain in coin.chains:
                by_source.setdefault(chain[0], []).append(coin)
        for source, coins in by_source.items():
            self._enqueue(source, coins)
        self._flush_fallbacks()
        self._complete_ready_coins()

    def _enqueue(self, source: str, coins: list[Coin]) -> None:
        """Queue jobs for `coins` at `source`, batched; an unknown or skipped source fails
        them there (they fall back where they can)."""
        lane = self.dispatcher.lanes.get(source)
        if lane is None:
            for coin in coins:
                self.book.chain_error(coin, source, f"{source}: no such source is configured")
            return
        now = self.parts.clock()
        refusal = self.access.refusal(source, now)
        if refusal is not None:
            self._skip(source, coins, refusal)
            return
        size = self.parts.batch_sizes[source]
        ordered = sorted(coins, key=lambda c: c.priority)
        for i in range(0, len(ordered), size):
            batch = tuple(ordered[i : i + size])
            lane.push(Job(source, batch, min(c.priority for c in batch), next(self._seq)), now)

    def _skip(self, source: str, coins: list[Coin], reason: str) -> None:
        symbols = ", ".join(c.symbol for c in coins)
        log.warning("%s skipped for %s: %s", source, symbols, reason)
        for coin in coins:
            self.book.chain_error(coin, source, f"{source} skipped: {reason}")

    def _flush_fallbacks(self) -> None:
        """Queue the coins that fell back, batched per next source (one job, not one each)."""
        while self.book.fallbacks:
            pending, self.book.fallbacks = self.book.fallbacks, {}
            for source, coins in pending.items():
                self._enqueue(source, coins)

    # ----------------------------------------------------------------- jobs

    def _launch(self, lane: Lane, job: Job, now: float) -> None:
        record = self.book.job_started(job, now)
        job.in_flight = lane.limiter.in_flight
        if (adaptation := self.parts.adaptations.get(job.source)) is not None:
            job.window = adaptation.started(now)
        _log_start(job)
        self.dispatcher.spawn(self._job(lane, job, record), f"job-{job.id}")

    async def _job(self, lane: Lane, job: Job, record: JobRecord) -> None:
        try:
            outcome, now = await self.executor.execute(lane, job, record)
        finally:
            self.book.job_ended(record)
        self._settle(lane, job, record, outcome, now)
        self._flush_fallbacks()
        completed = self.book.pop_complete(now)
        if len(completed) == 1:
            await self._store(completed[0])  # in this task: no task and no gather for one
        elif completed:
            # Together, not one after the other: a store may write them in one transaction.
            await asyncio.gather(*(self._store(result) for result in completed))

    def _settle(
        self, lane: Lane, job: Job, record: JobRecord, outcome: Outcome, now: float
    ) -> None:
        if (adaptation := self.parts.adaptations.get(job.source)) is not None:
            self.loop_lag.sample()
            lag = self.loop_lag.value
            adaptation.observe(now, job.started_at, job.in_flight, outcome, job.window, lag)
        if not isinstance(outcome, BaseException):
            self.access.answered(job.source, outcome, now, "")
            self.book.deliver_job(job, record, outcome, self.parts.sources[job.source].redact)
            return
        text = self.parts.sources[job.source].redact(str(outcome))
        record.status, record.error = JobStatus.FAILED, text
        if isinstance(outcome, TransientError) and outcome.unreachable:
            lane.limiter.forget(job.started_at)  # the upstream never saw it
        if self.access.answered(job.source, outcome, now, text):
            self._stop_source(lane, job, text, self.access.refusal(job.source, now) or text)
        elif isinstance(outcome, RateLimited):
            self._rate_limited(lane, job, record, outcome, now)
        elif isinstance(outcome, TransientError):
            warn_if_capped(job.source, outcome.retry_after, self.parts.retry.max_pause_s)
            wait = self.parts.retry.transient_wait(job.attempts, outcome.retry_after)
            self._retry(lane, job, record, text, now, JobStatus.RETRIED, wait)
        elif isinstance(outcome, Blocked):
            log.warning("⛔ %s", text)
            self.access.close(job.source, self.parts.sources[job.source].redact(outcome.message))
            self._stop_source(lane, job, text, self.access.refusal(job.source, now) or text)
        else:
            for coin in job.coins:
                self.book.chain_error(coin, job.source, text)

    def _rate_limited(
        self, lane: Lane, job: Job, record: JobRecord, error: RateLimited, now: float
    ) -> None:
        self.book.rate_limited += 1
        policy = self.parts.retry
        wait = policy.rate_limited_wait(
            job.attempts, error.retry_after, lane.limiter.limits.min_interval_s
        )
        warn_if_capped(job.source, error.retry_after, policy.max_pause_s)
        cool_down(self.parts, lane.limiter, now, wait)
        llog.debug("%s: cooling down %.3f s %r", job.source, wait, lane.limiter)
        log.warning("⏳ %s rate limited; pausing it for %.1fs", job.source, wait)
        self._retry(lane, job, record, record.error or "", now, JobStatus.RATE_LIMITED, 0.0)

    def _retry(
        self,
        lane: Lane,
        job: Job,
        record: JobRecord,
        error: str,
        now: float,
        status: JobStatus,
        wait: float,
    ) -> None:
        """Put the job back in its lane after `wait`, unless it may not try again."""
        refusal = self.access.refusal(job.source, now)
        if refusal is not None:  # blocked or unreachable while this job was in flight
            self._skip(job.source, list(job.coins), refusal)
        elif not self.parts.retry.may_retry(job.attempts):
            reason = f"{error} (gave up after {job.attempts} attempts)"
            for coin in job.coins:
                self.book.chain_error(coin, job.source, reason)
        else:
            record.status = status
            self.book.retries += 1
            job.not_before = now + wait
            deadline = self.dispatcher.deadline
            if deadline is not None and job.not_before >= deadline:
                reason = f"deferred: {error}; no time left to retry before the deadline"
                self._defer(job, reason, now)
            else:
                lane.push(job, now)

    def _stop_source(self, lane: Lane, job: Job, error: str, reason: str) -> None:
        """Fail this job at its source and skip the source's queued jobs (they fall back)."""
        for coin in job.coins:
            self.book.chain_error(coin, job.source, error)
        queued = [coin for queued_job in lane.drain() for coin in queued_job.coins]
        if queued:
            self._skip(job.source, queued, reason)

    def _defer(self, job: Job, reason: str, now: float) -> None:
        self.book.job_deferred(job, reason, now)
        self._complete_ready_coins()

    # ----------------------------------------------------------------- completion

    def _complete_ready_coins(self) -> None:
        """Complete coins synchronously and hand them to the sink in background tasks."""
        for result in self.book.pop_complete(self.parts.clock()):
            self.dispatcher.spawn(self._store(result), f"store-{result.symbol}")

    async def _store(self, result: CoinResult) -> None:
        sink = self.parts.sink
        await self._safe_sink("jobs", sink.jobs_recorded(self.run_id, self.book.take_changed()))
        await self._safe_sink("coin_completed", sink.coin_completed(self.run_id, result))

    async def _safe_sink(self, what: str, call: Awaitable[None]) -> None:
        try:
            await call
        except Exception:
            self.book.store_errors += 1
            log.exception("storing %s of run %s failed", what, self.run_id)


def _log_start(job: Job) -> None:
    if dlog.isEnabledFor(logging.DEBUG):  # the join is not free; most runs log no debug
        symbols = ",".join(job.symbols)
        dlog.debug("start job %d %s %s attempt %d", job.id, job.source, symbols, job.attempts)


def _log_summary(summary: RunSummary) -> None:
    log.info(
        "Run %s %s: %d ok, %d failed, %d deferred of %d coins in %.2fs "
        "(%d requests, %d rate-limited, %d retries)",
        summary.run_id,
        summary.status.value,
        summary.coins_ok,
        summary.coins_failed,
        summary.coins_deferred,
        summary.coins_total,
        summary.duration_s,
        summary.requests,
        summary.rate_limited,
        summary.retries,
    )
