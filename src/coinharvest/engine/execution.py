"""One started job's request: call the source, watch the wire, always give the slots back.

`execute` calls ``source.fetch`` under the job timeout and turns whatever happens into an
*outcome*: the `FetchResult`, or the `SourceError` it raised (a source that breaks its
contract with any other exception fails its coins with a `PermanentError`, logged with a
traceback). Whatever the outcome, the source's limiter and the global slot are released and
the observer told, before the run decides what the outcome means.

While the request is out, the source's HTTP layer reports to the engine (DESIGN §11,
`coinharvest.sources.sending`): when the headers are about to go on the wire (the start is
re-stamped then, after holding them until the source's spacing since its last request on the
wire has passed), when a good answer says the quota is spent (the source is paused), and
what an answer's rate-limit headers say (the adaptive rate control reads them).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from coinharvest.engine.adaptive import SourceAdaptation
from coinharvest.engine.lane import Job, Lane
from coinharvest.engine.limiter import SourceLimiter
from coinharvest.engine.parts import RunParts
from coinharvest.errors import PermanentError, RateLimited, SourceError, TransientError
from coinharvest.logs import get_logger
from coinharvest.models import JobRecord
from coinharvest.sources.base import FetchResult
from coinharvest.sources.sending import RateHeadersHook, on_wire

__all__ = ["Outcome", "execute", "outcome_label", "warn_if_capped"]

log = get_logger("engine")
llog = get_logger("limiter")

#: What a job's request came to: the answer, or the error that ended it.
Outcome = FetchResult | BaseException


async def execute(
    parts: RunParts,
    lane: Lane,
    job: Job,
    record: JobRecord,
    *,
    t0: float,
    on_free: Callable[[], None],
) -> tuple[Outcome, float]:
    """Run `job`'s request once (see the module docstring).

    Returns its outcome and the clock time it ended. `on_free` is called when the global
    slot is free again (after any ``DELAY_BETWEEN_COINS_MS`` pause).
    """
    outcome: Outcome | None = None  # None: cancelled mid-request
    try:
        outcome = await _fetch(parts, lane.limiter, job)
    finally:
        now = parts.clock()
        record.ended_s = now - t0
        parts.observer.job_finished(
            job.source, outcome_label(outcome), now - t0 - (record.started_s or 0.0)
        )
        lane.limiter.release()
        parts.slots.release(on_free)
    assert outcome is not None  # only a cancellation leaves it unset, and that re-raised
    return outcome, now


async def _fetch(parts: RunParts, limiter: SourceLimiter, job: Job) -> Outcome:
    source = parts.sources[job.source]
    adaptation = parts.adaptations.get(job.source)
    hooks = on_wire(
        sent=functools.partial(_restamp, parts, limiter, job),
        exhausted=functools.partial(_quota_spent, parts, limiter),
        gate=functools.partial(_wire_gate, parts, limiter),
        rate_headers=None if adaptation is None else _announcer(parts, adaptation),
    )
    try:
        async with asyncio.timeout(parts.job_timeout_s):
            with hooks:
                return await source.fetch(job.coins)
    except TimeoutError:
        return TransientError(
            job.source, f"no answer within {parts.job_timeout_s:g} s", timed_out=True
        )
    except SourceError as exc:
        return exc
    except Exception as exc:  # a source broke its contract: fail its coins, keep the run
        log.exception("source %s raised an unexpected error", job.source)
        return PermanentError(job.source, f"unexpected {type(exc).__name__}: {exc}")


def _announcer(parts: RunParts, adaptation: SourceAdaptation) -> RateHeadersHook:
    def announced(limit: float | None, remaining: float | None, reset_s: float | None) -> None:
        del remaining, reset_s  # read by the rate control as a limit only (ratecontrol.py)
        adaptation.announced(parts.clock(), limit)

    return announced


def _restamp(parts: RunParts, limiter: SourceLimiter, job: Job) -> None:
    """The job's request is on the wire now: its start counts from now (later only)."""
    now = parts.clock()
    if now > job.started_at:
        limiter.restamp(job.started_at, now)
        if (adaptation := parts.adaptations.get(job.source)) is not None:
            adaptation.rate.restamp(job.started_at, now)
        job.started_at = now


async def _wire_gate(parts: RunParts, limiter: SourceLimiter) -> None:
    """Hold a request's headers until the source's spacing since its last request on the
    wire has passed (see `SourceLimiter.send_at`); then count it as on the wire."""
    while (wait := limiter.send_at(parts.clock()) - parts.clock()) > 0:
        await asyncio.sleep(wait)
    limiter.sent(parts.clock())


def _quota_spent(parts: RunParts, limiter: SourceLimiter, seconds: float) -> None:
    """A good answer said the source's quota is spent: pause it until the reset (at most
    ``MAX_COOLDOWN_SECONDS``: a monthly quota must not stop a service for weeks)."""
    warn_if_capped(limiter.name, seconds, parts.retry.max_pause_s)
    seconds = parts.retry.server_wait(seconds) or 0.0
    limiter.cool_down(parts.clock() + seconds)
    llog.debug("%s: quota spent, cooling down %.3f s %r", limiter.name, seconds, limiter)
    log.warning(
        "⏳ %s quota spent (x-ratelimit-remaining: 0); pausing it for %.1fs",
        limiter.name,
        seconds,
    )


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
