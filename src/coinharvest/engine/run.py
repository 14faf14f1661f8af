"""One run of the engine: its lanes, its dispatcher loop, its jobs and its totals.

`Run` is created by `Engine.run()` and used once. Everything happens on one event loop:
the dispatcher loop (`_dispatch`) is the only place jobs start; each started job runs in its
own task (`_execute`), and on its end puts the job back, falls back, or completes coins, then
wakes the dispatcher. The loop sleeps until the earliest moment anything could change (a
limiter's ready time, a back-off, the deadline) or until woken.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Coroutine, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from coinharvest.engine.completion import CoinState, next_source
from coinharvest.engine.lane import Job, Lane
from coinharvest.engine.limiter import SourceLimiter
from coinharvest.errors import Blocked, PermanentError, RateLimited, SourceError, TransientError
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
from coinharvest.sources.sending import on_wire

if TYPE_CHECKING:
    from coinharvest.engine.engine import Engine

__all__ = ["Run"]

log = get_logger("engine")
dlog = get_logger("scheduler:dispatch")
llog = get_logger("limiter")

_UNAVAILABLE = "__unavailable__"


class Run:
    """State and logic of one collection pass (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        coins: Sequence[Coin],
        *,
        run_id: str,
        trigger: str,
        started_at: datetime,
        deadline: float | None,
        seq: itertools.count[int],
    ) -> None:
        self.e = engine
        self.coins = list(coins)
        self.run_id = run_id
        self.trigger = trigger
        self.started_at = started_at
        self.deadline = deadline
        self._seq = seq
        self.t0 = engine.clock()
        self.lanes = {name: Lane(name, lim) for name, lim in engine.limiters.items()}
        self.states = {c.symbol: CoinState(c, open_chains=len(c.chains)) for c in self.coins}
        self.records: list[JobRecord] = []
        self.results: list[CoinResult] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.requests = self.rate_limited = self.retries = self.store_errors = 0
        self.in_flight = self.max_in_flight = 0
        self._stopping = False
        self._fallbacks: dict[str, list[Coin]] = {}  # next source -> coins falling back to it
        # Sources sent nothing in this run, and why: unavailable as configured (no key), or
        # blocked by their upstream earlier in the run.
        self._skipped: dict[str, str] = {
            name: reason
            for name, src in engine.sources.items()
            if (reason := src.unavailable()) is not None
        }
        self._touched: set[str] = set()  # coins whose state changed since the last completion check
        self._wake: asyncio.Future[None] | None = None

    # ----------------------------------------------------------------- lifecycle

    async def execute(self) -> RunSummary:
        """Plan, dispatch until every coin is complete, and summarise."""
        log.info(
            "Processing %d coins with max concurrency: %d", len(self.coins), self.e.max_concurrency
        )
        await self._safe_sink(
            "run_started",
            self.e.sink.run_started(self.run_id, self.trigger, self.started_at, self.coins),
        )
        self._plan()
        cancelled = False
        try:
            await self._dispatch()
        except asyncio.CancelledError:
            # Cancelled from outside (e.g. a second SIGTERM): stop the jobs, but still
            # record the run as interrupted before letting the cancellation through.
            cancelled = True
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        summary = self._summary(cancelled=cancelled)
        self.e.observer.run_finished(summary)
        await self._safe_sink("run_finished", self.e.sink.run_finished(summary))
        self._log_summary(summary)
        if cancelled:
            raise asyncio.CancelledError
        return summary

    def _log_summary(self, summary: RunSummary) -> None:
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

    def stop(self) -> None:
        """No new starts; queued jobs are deferred when the dispatcher wakes."""
        self._stopping = True
        self._poke()

    # ----------------------------------------------------------------- planning

    def _plan(self) -> None:
        by_source: dict[str, list[Coin]] = {}
        for coin in self.coins:
            if not coin.chains:
                self._finish_now(coin, "no source configured for this coin")
            for chain in coin.chains:
                by_source.setdefault(chain[0], []).append(coin)
        for source, coins in by_source.items():
            self._enqueue(source, coins)
        self._flush_fallbacks()
        self._complete_ready_coins()

    def _enqueue(self, source: str, coins: list[Coin]) -> None:
        """Queue jobs for `coins` at `source`, batched; an unknown source fails them there."""
        now = self.e.clock()
        if source not in self.lanes:
            for coin in coins:
                self._chain_error(coin, source, f"{source}: no such source is configured")
            return
        if source in self._skipped:
            self._skip(source, coins)
            return
        size = self.e.batch_sizes[source]
        ordered = sorted(coins, key=lambda c: c.priority)
        for i in range(0, len(ordered), size):
            batch = tuple(ordered[i : i + size])
            job = Job(source, batch, min(c.priority for c in batch), next(self._seq))
            self.lanes[source].push(job, now)

    def _skip(self, source: str, coins: list[Coin]) -> None:
        """Fail `coins` at `source` without asking it (they fall back where they can)."""
        log.warning(
            "%s skipped for %s: %s",
            source,
            ", ".join(c.symbol for c in coins),
            self._skipped[source],
        )
        for coin in coins:
            self._chain_error(coin, source, f"{source} skipped: {self._skipped[source]}")

    def _finish_now(self, coin: Coin, error: str) -> None:
        state = self.states[coin.symbol]
        state.errors.append(error)
        state.failed = True
        self._touched.add(coin.symbol)

    # ----------------------------------------------------------------- dispatching

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = self.e.clock()
            self._defer_unreachable(now)
            self._start_ready(now)
            if not self.tasks and not any(self.lanes.values()):
                return
            wake = self._next_wake(now)
            self._wake = loop.create_future()
            handle = (
                None
                if wake is None
                else loop.call_at(loop.time() + max(0.0, wake - now), self._poke)
            )
            try:
                await self._wake
            finally:
                if handle is not None:
                    handle.cancel()

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _start_ready(self, now: float) -> None:
        """Start jobs while a global slot is free, best (priority, arrival) first."""
        while self.e.slots.available():
            now = self.e.clock()  # fresh per start: a start is stamped when it happens
            best: Lane | None = None
            best_key = (0, 0)
            for lane in self.lanes.values():
                job = lane.head(now)
                if job is None or (best is not None and (job.priority, job.seq) >= best_key):
                    continue
                if self._admissible(lane.limiter, now):
                    best, best_key = lane, (job.priority, job.seq)
            if best is None or not best.limiter.try_start(now):
                return
            self.e.slots.take()
            llog.debug("%s: start granted %r", best.source, best.limiter)
            self._launch(best, best.pop(), now)

    @staticmethod
    def _admissible(limiter: SourceLimiter, now: float) -> bool:
        at = limiter.ready_at(now)
        return at is not None and at <= now

    def _next_wake(self, now: float) -> float | None:
        """When to look again if nobody wakes us: a limiter's ready time, a back-off, the deadline.

        With no global slot free, only a slot's release (which wakes us) or the deadline matter.
        """
        times: list[float] = []
        if self.deadline is not None and any(self.lanes.values()):
            times.append(self.deadline)
        for lane in self.lanes.values():
            if not lane or not self.e.slots.available():
                continue
            due = lane.next_due()
            if due is not None:
                times.append(due)
            if lane.head(now) is not None and (at := lane.limiter.ready_at(now)) is not None:
                times.append(at)
        return min(times) if times else None

    def _defer_unreachable(self, now: float) -> None:
        """Defer queued jobs that cannot start before the deadline, or at all when stopping."""
        for lane in self.lanes.values():
            if not lane:
                continue
            if self._stopping:
                reason = "deferred: collection stopped before this job started"
            elif self.deadline is None:
                continue
            elif now >= self.deadline:
                reason = "deferred: run deadline passed before this job started"
            elif lane.limiter.cooldown_until > self.deadline:
                reason = f"deferred: {lane.source} is paused (rate limited) past the run deadline"
            else:
                continue
            for job in lane.drain():
                self._defer_job(job, reason, now)

    # ----------------------------------------------------------------- jobs

    def _launch(self, lane: Lane, job: Job, now: float) -> None:
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
        self.e.observer.job_started(job.source, max(0.0, now - job.queued_at))
        for coin in job.coins:
            if self.states[coin.symbol].mark_started(now):
                log.info("📊 Collecting %s (%s)...", coin.name, coin.symbol)
        dlog.debug(
            "start job %d %s %s attempt %d", job.id, job.source, ",".join(job.symbols), job.attempts
        )
        self._spawn(self._execute(lane, job, record), f"job-{job.id}")

    def _spawn(self, coro: Coroutine[None, None, None], name: str) -> None:
        """Run `coro` as a task of this run; the dispatcher wakes when it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._poke()

    async def _execute(self, lane: Lane, job: Job, record: JobRecord) -> None:
        source = self.e.sources[job.source]
        outcome: FetchResult | BaseException | None = None  # None: cancelled mid-request
        try:
            sent = functools.partial(self._restamp, lane.limiter, job)
            exhausted = functools.partial(self._quota_spent, lane.limiter)
            gate = functools.partial(self._wire_gate, lane.limiter)
            async with asyncio.timeout(self.e.job_timeout_s):
                with on_wire(sent=sent, exhausted=exhausted, gate=gate):
                    outcome = await source.fetch(job.coins)
        except TimeoutError:
            outcome = TransientError(job.source, f"no answer within {self.e.job_timeout_s:g} s")
        except SourceError as exc:
            outcome = exc
        except Exception as exc:  # a source broke its contract: fail its coins, keep the run
            log.exception("source %s raised an unexpected error", job.source)
            outcome = PermanentError(job.source, f"unexpected {type(exc).__name__}: {exc}")
        finally:
            now = self.e.clock()
            record.ended_s = now - self.t0
            self.e.observer.job_finished(
                job.source,
                _outcome(outcome),
                now - self.t0 - (record.started_s or 0.0),
            )
            self.in_flight -= 1
            lane.limiter.release()
            self.e.slots.release(self._poke)
        assert outcome is not None  # only a cancellation leaves it unset, and that re-raised
        await self._settle(lane, job, record, outcome, now)

    def _restamp(self, limiter: SourceLimiter, job: Job) -> None:
        """The job's request is on the wire now: its start counts from now (later only)."""
        now = self.e.clock()
        if now > job.started_at:
            limiter.restamp(job.started_at, now)
            job.started_at = now

    async def _wire_gate(self, limiter: SourceLimiter) -> None:
        """Hold a request's headers until the source's spacing since its last request on
        the wire has passed (see `SourceLimiter.send_at`); then count it as on the wire."""
        while (wait := limiter.send_at(self.e.clock()) - self.e.clock()) > 0:
            await asyncio.sleep(wait)
        limiter.sent(self.e.clock())

    def _quota_spent(self, limiter: SourceLimiter, seconds: float) -> None:
        """A good answer said the source's quota is spent: pause it until the reset."""
        limiter.cool_down(self.e.clock() + seconds)
        llog.debug("%s: quota spent, cooling down %.3f s %r", limiter.name, seconds, limiter)
        log.warning(
            "⏳ %s quota spent (x-ratelimit-remaining: 0); pausing it for %.1fs",
            limiter.name,
            seconds,
        )

    async def _settle(
        self,
        lane: Lane,
        job: Job,
        record: JobRecord,
        outcome: FetchResult | BaseException,
        now: float,
    ) -> None:
        if isinstance(outcome, RateLimited):
            self.rate_limited += 1
            wait = self.e.retry.rate_limited_wait(
                job.attempts, outcome.retry_after, lane.limiter.limits.min_interval_s
            )
            lane.limiter.cool_down(now + wait)
            llog.debug("%s: cooling down %.3f s %r", job.source, wait, lane.limiter)
            log.warning("⏳ %s rate limited; pausing it for %.1fs", job.source, wait)
            self._retry_or_give_up(lane, job, record, outcome, now, JobStatus.RATE_LIMITED, 0.0)
        elif isinstance(outcome, TransientError):
            wait = self.e.retry.transient_wait(job.attempts, outcome.retry_after)
            self._retry_or_give_up(lane, job, record, outcome, now, JobStatus.RETRIED, wait)
        elif isinstance(outcome, Blocked):
            self._blocked(lane, job, record, outcome)
        elif isinstance(outcome, BaseException):
            record.status, record.error = JobStatus.FAILED, str(outcome)
            for coin in job.coins:
                self._chain_error(coin, job.source, str(outcome))
        else:
            self._deliver(job, record, outcome)
        self._flush_fallbacks()
        await self._complete_ready_coins_async()

    def _retry_or_give_up(
        self,
        lane: Lane,
        job: Job,
        record: JobRecord,
        error: SourceError,
        now: float,
        status: JobStatus,
        wait: float,
    ) -> None:
        record.error = str(error)
        if job.source in self._skipped:  # blocked while this job was in flight: no retry
            record.status = JobStatus.FAILED
            self._skip(job.source, list(job.coins))
            return
        if not self.e.retry.may_retry(job.attempts):
            record.status = JobStatus.FAILED
            for coin in job.coins:
                self._chain_error(
                    coin, job.source, f"{error} (gave up after {job.attempts} attempts)"
                )
            return
        record.status = status
        self.retries += 1
        job.not_before = now + wait
        if self.deadline is not None and job.not_before >= self.deadline:
            self._defer_job(
                job, f"deferred: {error}; no time left to retry before the deadline", now
            )
            return
        lane.push(job, now)

    def _blocked(self, lane: Lane, job: Job, record: JobRecord, error: Blocked) -> None:
        """The upstream refuses us: fail this job, and send the source nothing more this run."""
        record.status, record.error = JobStatus.FAILED, str(error)
        log.warning("⛔ %s", error)
        self._skipped[job.source] = error.message
        for coin in job.coins:
            self._chain_error(coin, job.source, str(error))
        queued = [coin for queued_job in lane.drain() for coin in queued_job.coins]
        if queued:
            self._skip(job.source, queued)

    def _deliver(self, job: Job, record: JobRecord, answer: FetchResult) -> None:
        failed = 0
        for coin in job.coins:
            if not self._delivered(job.source, coin, answer.get(coin.symbol)):
                failed += 1
        if failed:
            record.error = f"{failed} of {len(job.coins)} coins failed"

    def _delivered(self, source: str, coin: Coin, got: CoinOutcome | None) -> bool:
        """Take one coin's part of an answer; False if it failed there (it may fall back).

        Implausible values are dropped with a note; an answer left with no value at all
        fails the coin at this source, saying why.
        """
        if got is None or isinstance(got, SourceError):
            self._chain_error(coin, source, str(got or f"{source}: no result for {coin.symbol}"))
            return False
        answer = got if isinstance(got, CoinAnswer) else CoinAnswer(got)
        kept, implausible = screen(_own(answer.observations, coin, source))
        state = self.states[coin.symbol]
        state.note(answer.notes + implausible)
        if not kept:
            self._chain_error(coin, source, f"{source}: the answer had no usable value")
            return False
        state.delivered(source, kept)
        self._touched.add(coin.symbol)
        return True

    def _chain_error(self, coin: Coin, source: str, error: str) -> None:
        state = self.states[coin.symbol]
        self._touched.add(coin.symbol)
        nxt = next_source(coin, source)
        if nxt is None:
            state.chain_failed(source, error)
            return
        state.note_fallback(source, error)
        log.info("↪ %s: %s failed, asking %s", coin.symbol, source, nxt)
        self._fallbacks.setdefault(nxt, []).append(coin)

    def _flush_fallbacks(self) -> None:
        """Queue the coins that fell back, batched per next source (one job, not one each)."""
        while self._fallbacks:
            pending, self._fallbacks = self._fallbacks, {}
            for source, coins in pending.items():
                self._enqueue(source, coins)

    def _defer_job(self, job: Job, reason: str, now: float) -> None:
        self.records.append(
            JobRecord(
                job.id,
                job.source,
                job.symbols,
                job.attempts,
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
        self._complete_ready_coins()

    # ----------------------------------------------------------------- completion

    def _complete_ready_coins(self) -> None:
        """Complete coins synchronously and hand them to the sink in background tasks."""
        for result in self._pop_complete():
            self._spawn(self._store(result), f"store-{result.symbol}")

    async def _complete_ready_coins_async(self) -> None:
        for result in self._pop_complete():
            await self._store(result)

    def _pop_complete(self) -> list[CoinResult]:
        """Take out the coins that became complete since the last call (only touched ones)."""
        touched, self._touched = self._touched, set()
        done = [
            self.states[sym] for sym in touched if sym in self.states and self.states[sym].complete
        ]
        now = self.e.clock()
        results = []
        for state in done:
            del self.states[state.coin.symbol]
            result = state.result(now)
            self.results.append(result)
            self.e.observer.coin_completed(result)
            _log_result(result)
            results.append(result)
        return results

    async def _store(self, result: CoinResult) -> None:
        await self._safe_sink("coin_completed", self.e.sink.coin_completed(self.run_id, result))

    async def _safe_sink(self, what: str, call: Awaitable[None]) -> None:
        try:
            await call
        except Exception:
            self.store_errors += 1
            log.exception("storing %s of run %s failed", what, self.run_id)

    # ----------------------------------------------------------------- summary

    def _summary(self, *, cancelled: bool = False) -> RunSummary:
        # Coins still open (only when cancelled) count as deferred; nothing of them is stored.
        for state in self.states.values():
            self.results.append(
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
            )
        self.states.clear()
        # Report in the coins' own order (priority, then file order), not completion order.
        order = {c.symbol: i for i, c in enumerate(self.coins)}
        self.results.sort(key=lambda r: order.get(r.symbol, len(order)))
        counts = {s: sum(1 for r in self.results if r.status is s) for s in CoinStatus}
        total = len(self.results)
        if cancelled or (self._stopping and counts[CoinStatus.DEFERRED]):
            status = RunStatus.INTERRUPTED
        elif counts[CoinStatus.OK] == total:
            status = RunStatus.COMPLETED
        elif counts[CoinStatus.OK] == 0:
            status = RunStatus.FAILED
        else:
            status = RunStatus.PARTIAL
        return RunSummary(
            run_id=self.run_id,
            trigger=self.trigger,
            status=status,
            started_at=self.started_at,
            duration_s=self.e.clock() - self.t0,
            coins_total=total,
            coins_ok=counts[CoinStatus.OK],
            coins_failed=counts[CoinStatus.FAILED],
            coins_deferred=counts[CoinStatus.DEFERRED],
            requests=self.requests,
            rate_limited=self.rate_limited,
            retries=self.retries,
            max_in_flight=self.max_in_flight,
            store_errors=self.store_errors,
            results=self.results,
            jobs=self.records,
        )


def _outcome(outcome: object) -> str:
    """The HTTP status of a finished request, or the kind of failure without one."""
    if outcome is None:
        return "cancelled"
    if not isinstance(outcome, BaseException):
        return "200"
    if isinstance(outcome, RateLimited):
        return "429"
    status = getattr(outcome, "status", None)
    if status is not None:
        return str(status)
    if isinstance(outcome, TransientError):
        return "timeout" if "timed out" in str(outcome) or "no answer" in str(outcome) else "error"
    return "error"


def _own(observations: list[Observation], coin: Coin, source: str) -> list[Observation]:
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
