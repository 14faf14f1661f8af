"""Tells the engine when a job's request is really on the wire, and when its quota is spent.

The engine commits a start when it admits a job; the bytes leave later (task scheduling,
building the request, and above all opening the connection: DNS, TCP, TLS). DESIGN §11:
a start counts from the moment the request's headers are sent. So:

- the engine sets its callbacks with `on_wire(sent=..., exhausted=...)` around ``fetch``;
- a source's HTTP client wraps each request in `outgoing()`, which reports "sent" as the
  request is handed to the transport (all that a transport that reports nothing, such as
  `HandlerTransport` in tests, allows), and calls `notify_sent()` again when the transport
  reports that the headers are being sent (aiohttp's ``on_request_headers_sent`` trace); each call
  re-stamps the start in the limiter, later only;
- only the job's **first** request counts: once it has ended, further "sent" reports of
  the same job (a source making a second request) are ignored;
- `about_to_send()` (awaited by the transport's trace callback just before the headers go
  out) first lets the engine hold them (`on_wire(gate=...)`) until the source's spacing since
  its last request *on the wire* has passed: connections open in different times (a new
  TLS connection vs an idle one), so a job admitted later can overtake an earlier one that
  is still connecting, and admission-time spacing alone would not hold at the server;
- `notify_exhausted(seconds)`: a successful answer said the source's quota is spent
  (``x-ratelimit-remaining: 0``) until `seconds` from now; the engine pauses the source;
- `notify_rate_headers(limit, remaining, reset_s)`: an answer (good or a 429) carried the
  upstream's ``x-ratelimit-*`` headers; the engine's adaptive rate control reads them.

The callbacks live in a context variable, so they are per job task and need no plumbing
through the `Source` interface. Sources that don't report lose nothing but this precision.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from coinharvest.sources.retry_after import parse_rate_headers

__all__ = [
    "RateHeadersHook",
    "about_to_send",
    "notify_exhausted",
    "notify_rate_headers",
    "notify_sent",
    "on_wire",
    "outgoing",
    "report_rate_headers",
]

#: Told ``(limit, remaining, reset_s)`` from an answer's rate-limit headers (None: absent).
RateHeadersHook = Callable[[float | None, float | None, float | None], None]


@dataclass(slots=True)
class _Job:
    """The current job's callbacks, and whether its first request has ended."""

    sent: Callable[[], None] | None
    exhausted: Callable[[float], None] | None
    gate: Callable[[], Awaitable[None]] | None = None
    rate_headers: RateHeadersHook | None = None
    settled: bool = False


_job: ContextVar[_Job | None] = ContextVar("coinharvest_on_wire", default=None)


@contextmanager
def on_wire(
    *,
    sent: Callable[[], None] | None = None,
    exhausted: Callable[[float], None] | None = None,
    gate: Callable[[], Awaitable[None]] | None = None,
    rate_headers: RateHeadersHook | None = None,
) -> Iterator[None]:
    """Within this block (in this task): `notify_sent()` calls `sent` (until the first
    request has ended), `about_to_send()` awaits `gate()` first,
    `notify_exhausted(seconds)` calls `exhausted(seconds)` and `notify_rate_headers(...)`
    calls `rate_headers(...)`."""
    token = _job.set(_Job(sent, exhausted, gate, rate_headers))
    try:
        yield
    finally:
        _job.reset(token)


def notify_sent() -> None:
    """The current job's request is on the wire now (its headers are being sent)."""
    job = _job.get()
    if job is not None and not job.settled and job.sent is not None:
        job.sent()


async def about_to_send() -> None:
    """The current job's request is about to send its headers: wait for the gate, stamp."""
    job = _job.get()
    if job is not None and not job.settled and job.gate is not None:
        await job.gate()
    notify_sent()


def notify_exhausted(seconds: float) -> None:
    """The source said its quota is spent for `seconds` from now (answer still good)."""
    job = _job.get()
    if job is not None and job.exhausted is not None:
        job.exhausted(seconds)


def notify_rate_headers(
    limit: float | None, remaining: float | None, reset_s: float | None
) -> None:
    """An answer of the current job carried rate-limit headers (None for each one absent)."""
    job = _job.get()
    if job is not None and job.rate_headers is not None:
        job.rate_headers(limit, remaining, reset_s)


def report_rate_headers(headers: Mapping[str, str]) -> None:
    """`notify_rate_headers` with what `headers` (case-insensitive) say, if anything."""
    if (rate := parse_rate_headers(headers)) is not None:
        notify_rate_headers(*rate)


@contextmanager
def outgoing() -> Iterator[None]:
    """Around one request: reports "sent" now, and settles the job's start when it ends."""
    notify_sent()
    try:
        yield
    finally:
        job = _job.get()
        if job is not None:
            job.settled = True
