"""An awaitable Bottleneck-style limiter, as the seed used (``maxConcurrent``, ``minTime``,
``reservoir``), built on the decisions of `coinharvest.engine.limiter.SourceLimiter`.

The seed awaited ``limiter.schedule(fn)`` *inside* a coin's slot: the caller blocks until
the source admits it. This class gives that shape: ``async with limiter: ...``. Waiters are
served first come, first served (Bottleneck's queue within one priority); the head waiter
sleeps until the source is ready, the others queue behind it. The reservoir is the
`SourceLimiter`'s sliding window, which is never looser than Bottleneck's refreshed
reservoir, so the baseline is not handicapped by it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from coinharvest.engine.limiter import Clock, SourceLimiter, loop_clock
from coinharvest.models import SourceLimits

__all__ = ["BottleneckLimiter"]


class BottleneckLimiter:
    """Blocks the caller until one request to the source may start; FIFO among callers."""

    __slots__ = ("_clock", "_core", "_freed", "_turn")

    def __init__(self, name: str, limits: SourceLimits, clock: Clock = loop_clock) -> None:
        self._core = SourceLimiter(name, limits, clock)
        self._clock = clock
        self._turn = asyncio.Lock()  # FIFO: only the head of the queue waits on the limits
        self._freed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<BottleneckLimiter {self._core!r}>"

    async def acquire(self) -> None:
        """Wait (in FIFO order) until a start is admitted, then commit it."""
        async with self._turn:
            while True:
                now = self._clock()
                at = self._core.ready_at(now)
                if at is None:  # in-flight cap full: only a release can help
                    self._freed.clear()
                    await self._freed.wait()
                elif at > now:
                    await asyncio.sleep(at - now)
                elif self._core.try_start(now):
                    return

    def release(self) -> None:
        """The request ended."""
        self._core.release()
        self._freed.set()

    async def __aenter__(self) -> BottleneckLimiter:
        await self.acquire()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
