"""A virtual-time event loop: time jumps to the next timer instead of passing.

`run_virtual(coro)` runs `coro` on a loop whose `time()` is virtual. Whenever the loop would
sleep with nothing ready, the clock jumps forward by exactly the sleep. `asyncio.sleep`,
`call_at`, timeouts and the engine's limiters all read this clock, so a run that would take
70 s takes milliseconds, and its timings are exact. Only for code that does no real I/O.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector:
    def __init__(self, real: selectors.BaseSelector, loop: VirtualClockLoop) -> None:
        self._real = real
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._real.select(0)
        if events or timeout is None:
            return events or self._real.select(timeout)
        self._loop.virtual_time += max(0.0, timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector loop with a virtual clock (see the module docstring)."""

    def __init__(self) -> None:
        real = selectors.DefaultSelector()  # what the base class would make
        super().__init__(real)
        self.virtual_time = 0.0
        self._selector = _JumpingSelector(real, self)

    def time(self) -> float:
        return self.virtual_time


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on a fresh virtual-time loop."""
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
