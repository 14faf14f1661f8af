"""How long this process's own event loop makes a ready callback wait: the client's lag.

An answer's response time, as the engine sees it, ends when the job's task resumes, not when
the bytes arrived. On a busy client (10,000 coins stored as they finish, two log lines a
coin) the loop runs each ready callback some milliseconds late, and every response time
grows by that much though the upstream is as fast as ever. The concurrency controller
(engine/concurrency.py) reads longer response times as requests queueing *at the upstream*
and lowers the in-flight limit: measured in W5 through ``collect``, adaptive limits on cost
1.51× the bound against 1.37× with them off (docs/BENCHMARKS.md).

`LoopLag` samples that lag without a timer: after each answer it schedules one callback with
``call_soon`` and measures how long it waited for its turn (the callbacks already ready run
first, as the next socket read would wait for them). The mean of recent samples (EWMA) is
subtracted from response times before the controller judges them. No timer means no cost
while idle and no effect on a virtual clock (the time does not move within a loop turn).
"""

from __future__ import annotations

import asyncio

__all__ = ["LoopLag"]


class LoopLag:
    """An exponentially weighted mean of how late a `call_soon` callback runs.

    :param weight: the weight of each new sample (0.1: about the last ten answers).
    """

    __slots__ = ("_pending", "_weight", "value")

    def __init__(self, weight: float = 0.1) -> None:
        self._weight = weight
        self._pending = False
        #: Seconds: the current estimate (0.0 before any sample).
        self.value = 0.0

    def sample(self) -> None:
        """Measure once, from now to this loop's next turn (one sample at a time)."""
        if self._pending:
            return
        loop = asyncio.get_running_loop()
        self._pending = True
        loop.call_soon(self._landed, loop, loop.time())

    def _landed(self, loop: asyncio.AbstractEventLoop, queued_at: float) -> None:
        self._pending = False
        late = max(0.0, loop.time() - queued_at)
        self.value += self._weight * (late - self.value)
