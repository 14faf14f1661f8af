"""Tells the engine when a job's request really leaves, so limits count from that moment.

The engine commits a start when it admits a job; the bytes leave a little later (task
scheduling, building the request, a busy event loop). A source's HTTP client calls
`notify_sent()` just before it sends (an httpx request hook); the engine, which set the
callback with `on_send()` around ``fetch``, then re-stamps the start in the limiter.
The callback lives in a context variable, so it is per job task and needs no plumbing
through the `Source` interface. Sources that don't call it lose nothing but this precision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["notify_sent", "on_send"]

_callback: ContextVar[Callable[[], None] | None] = ContextVar("coinharvest_on_send", default=None)


@contextmanager
def on_send(callback: Callable[[], None]) -> Iterator[None]:
    """Within this block (in this task), `notify_sent()` calls `callback`."""
    token = _callback.set(callback)
    try:
        yield
    finally:
        _callback.reset(token)


def notify_sent() -> None:
    """A request of the current job is about to be sent."""
    callback = _callback.get()
    if callback is not None:
        callback()
