"""One started job's request: call the source, watch the wire, always give the slots back.

`Executor.execute` calls ``source.fetch`` under the job timeout and turns whatever happens
into an *outcome*: the `FetchResult`, or the `SourceError` it raised (a source that breaks its
contract with any other exception fails its coins with a `PermanentError`, logged with a
traceback). Whatever the outcome, the source's limiter and the global slot are released and
the observer told, before the run decides what the outcome means.

While the request is out, the source's HTTP layer reports to the engine (DESIGN §11,
`coinharvest.sources.sending`): when the headers are about to go on the wire (the start is
re-stamped then, after holding them until the source's spacing since its last request on the
wire has passed), when a good answer says the quota is spent (the source is paused), and
what an answer's rate-limit headers say (the adaptive rate control reads them).

With ``SHARED_LIMITS=on`` (`engine/shared_limits.py`), a started job first asks PostgreSQL
for a start under a lease (holding its global slot while it waits), the wire gate then also
waits for the spacing on the wire of every process, and the lease is given back when the
request has ended; a 429 or a spent quota pauses the source for every process.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from coinharvest.engine.adaptive import SourceAdaptation
from coinharvest.engine.lane import Job, Lane
from coinharvest.engine.limiter import SourceLimiter
from coinharvest.engine.parts import RunParts
from coinharvest.errors import PermanentError, RateLimited, SourceError, TransientError
from coinharvest.logs import get_logger
from coinharvest.models import JobRecord
from coinharvest.sources.base import FetchResult
from coinharvest.sources.sending import RateHeadersHook, on_wire

if TYPE_CHECKING:
    from coinharvest.engine.shared_limits import SharedLimits

__all__ = ["Executor", "Outcome", "cool_down", "outcome_label", "warn_if_capped"]

log = get_logger("engine")
llog = get_logger("limiter")

#: What a job's request came to: the answer, or the error that ended it.
Outcome = FetchResult | BaseException


class Executor:
    """Runs one run's started jobs' requests (see the module docstring).

    The callbacks that do not depend on the job (the wire gate, the quota pause, the
    rate-header reader) are built once per source, not once per request.

    :param t0: the run's start (clock time); records hold times relative to it.
    :param on_free: called when a global slot is free again (after any
        ``DELAY_BETWEEN_COINS_MS`` pause).
    """

    def __init__(self, parts: RunParts, *, t0: float, on_free: Callable[[], None]) -> None:
        self.parts = parts
        self.t0 = t0
        self.on_free = on_free
        self._hooks: dict[str, _SourceHooks] = {}

    async def execute(self, lane: Lane, job: Job, record: JobRecord) -> tuple[Outcome, float]:
        """Run `job`'s request once; its outcome and the clock time it ended.

        Whatever happens, the source's limiter and the global slot are released, the
        record's end time set and the observer told before this returns (or re-raises a
        cancellation).
        """
        parts = self.parts
        outcome: Outcome | None = None  # None: cancelled mid-request
        try:
            outcome = await self._admitted_fetch(lane.limiter, job)
        finally:
            now = parts.clock()
            record.ended_s = now - self.t0
            parts.observer.job_finished(
                job.source, outcome_label(outcome), now - self.t0 - (record.started_s or 0.0)
            )
            lane.limiter.release()
            parts.slots.release(self.on_free)
        assert outcome is not None  # only a cancellation leaves it unset, and that re-raised
        return outcome, now

    async def _admitted_fetch(self, limiter: SourceLimiter, job: Job) -> Outcome:
        """`_fetch`, once the shared limits (if any) admit the job; the lease given back."""
        shared = self.parts.shared
        if shared is None:
            return await self._fetch(limiter, job, None)
        lease = uuid.uuid4()
        adaptive = job.source in self.parts.adaptations
        refused = await shared.admit(limiter, lease, self.parts.clock, adaptive=adaptive)
        if refused is not None:  # nothing recorded, nothing sent
            return refused
        try:
            return await self._fetch(limiter, job, lease)
        finally:
            await shared.release(job.source, lease)

    async def _fetch(self, limiter: SourceLimiter, job: Job, lease: uuid.UUID | None) -> Outcome:
        parts = self.parts
        hooks = self._hooks.get(job.source)
        if hooks is None:
            hooks = self._hooks[job.source] = _SourceHooks(parts, limiter)
        try:
            with hooks.around(job, lease):
                if parts.job_timeout_s is None:  # no timer to arm and cancel
                    return await parts.sources[job.source].fetch(job.coins)
                async with asyncio.timeout(parts.job_timeout_s):
                    return await parts.sources[job.source].fetch(job.coins)
        except TimeoutError:
            return TransientError(
                job.source, f"no answer within {parts.job_timeout_s:g} s", timed_out=True
            )
        except SourceError as exc:
            return exc
        except Exception as exc:  # a source broke its contract: fail its coins, keep the run
            log.exception("source %s raised an unexpected error", job.source)
            return PermanentError(job.source, f"unexpected {type(exc).__name__}: {exc}")


class _SourceHooks:
    """What one source's HTTP layer reports to, through `coinharvest.sources.sending`."""

    __slots__ = ("adaptation", "exhausted", "gate", "limiter", "parts", "rate_headers")

    def __init__(self, parts: RunParts, limiter: SourceLimiter) -> None:
        self.parts = parts
        self.limiter = limiter
        self.adaptation = parts.adaptations.get(limiter.name)
        self.exhausted = functools.partial(_quota_spent, parts, limiter)
        self.gate = functools.partial(_wire_gate, parts, limiter)
        self.rate_headers = None if self.adaptation is None else _announcer(parts, self.adaptation)

    def around(self, job: Job, lease: uuid.UUID | None) -> AbstractContextManager[None]:
        """The `on_wire` block around `job`'s request (`lease`: its shared admission)."""
        gate: Callable[[], Awaitable[None]] = self.gate
        if lease is not None and self.parts.shared is not None:
            gate = functools.partial(
                _shared_gate, self.gate, self.parts.shared, self.limiter, lease
            )
        return on_wire(
            sent=functools.partial(self.restamp, job),
            exhausted=self.exhausted,
            gate=gate,
            rate_headers=self.rate_headers,
        )

    def restamp(self, job: Job) -> None:
        """`job`'s request is on the wire now: its start counts from now (later only)."""
        now = self.parts.clock()
        if now > job.started_at:
            self.limiter.restamp(job.started_at, now)
            if self.adaptation is not None:
                self.adaptation.rate.restamp(job.started_at, now)
            job.started_at = now


def _announcer(parts: RunParts, adaptation: SourceAdaptation) -> RateHeadersHook:
    def announced(limit: float | None, remaining: float | None, reset_s: float | None) -> None:
        del remaining, reset_s  # read by the rate control as a limit only (ratecontrol.py)
        adaptation.announced(parts.clock(), limit)

    return announced


async def _wire_gate(parts: RunParts, limiter: SourceLimiter) -> None:
    """Hold a request's headers until the source's spacing since its last request on the
    wire has passed (see `SourceLimiter.send_at`); then count it as on the wire."""
    while (wait := limiter.send_at(parts.clock()) - parts.clock()) > 0:
        await asyncio.sleep(wait)
    limiter.sent(parts.clock())


async def _shared_gate(
    local: Callable[[], Awaitable[None]],
    shared: SharedLimits,
    limiter: SourceLimiter,
    lease: uuid.UUID,
) -> None:
    """The local wire gate, then the shared one (the spacing on the wire of every process)."""
    await local()
    await shared.on_wire(limiter, lease)


def _quota_spent(parts: RunParts, limiter: SourceLimiter, seconds: float) -> None:
    """A good answer said the source's quota is spent: pause it until the reset (at most
    ``MAX_COOLDOWN_SECONDS``: a monthly quota must not stop a service for weeks)."""
    warn_if_capped(limiter.name, seconds, parts.retry.max_pause_s)
    seconds = parts.retry.server_wait(seconds) or 0.0
    cool_down(parts, limiter, parts.clock(), seconds)
    llog.debug("%s: quota spent, cooling down %.3f s %r", limiter.name, seconds, limiter)
    log.warning(
        "⏳ %s quota spent (x-ratelimit-remaining: 0); pausing it for %.1fs",
        limiter.name,
        seconds,
    )


def cool_down(parts: RunParts, limiter: SourceLimiter, now: float, seconds: float) -> None:
    """Pause `limiter`'s source for `seconds` from `now`; with shared limits, for every
    process (in the background: the local pause holds this process at once)."""
    limiter.cool_down(now + seconds)
    if parts.shared is not None:
        parts.shared.cool_down(limiter.name, seconds)


def warn_if_capped(source: str, asked_s: float | None, cap_s: float) -> None:
    """Log that a server asked for a longer pause than ``MAX_COOLDOWN_SECONDS`` allows."""
    if asked_s is not None and not asked_s <= cap_s:  # NaN and inf included
        log.warning(
            "%s asked for a %g s pause; capped at %g s (MAX_COOLDOWN_SECONDS)",
            source,
            asked_s,
            cap_s,
        )


def outcome_label(outcome: Outcome | None) -> str:
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
        return "timeout" if outcome.timed_out else "error"
    return "error"
