"""The global cap: at most `MAX_COLLECTION_CONCURRENCY` jobs in flight across all sources.

A slot is taken only at the moment a job starts (never while it waits for its source) and
given back when the job ends. With the deprecated ``DELAY_BETWEEN_COINS_MS`` the slot is
given back only after that pause, which is what makes ``MAX_COLLECTION_CONCURRENCY=1`` +
``DELAY_BETWEEN_COINS_MS=5000`` reproduce the old sequential collector exactly. The pause
is a loop timer, not a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["GlobalSlots"]


class GlobalSlots:
    """A counter of jobs in flight with a fixed capacity."""

    __slots__ = ("capacity", "in_use", "max_in_use", "pause_after_s")

    def __init__(self, capacity: int, pause_after_s: float = 0.0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be ≥ 1, got {capacity}")
        self.capacity = capacity
        self.pause_after_s = pause_after_s
        self.in_use = 0
        self.max_in_use = 0

    def __repr__(self) -> str:
        return f"<GlobalSlots {self.in_use}/{self.capacity}>"

    def available(self) -> bool:
        """Whether a job could take a slot now."""
        return self.in_use < self.capacity

    def take(self) -> None:
        """Take a slot (the caller checked `available()` with no await in between)."""
        if self.in_use >= self.capacity:
            raise RuntimeError("no global slot available")
        self.in_use += 1
        self.max_in_use = max(self.max_in_use, self.in_use)

    def release(self, on_free: Callable[[], None]) -> None:
        """Give a slot back, after `pause_after_s` if set; call `on_free` once it is free."""
        if self.pause_after_s <= 0:
            self._free(on_free)
        else:
            asyncio.get_running_loop().call_later(self.pause_after_s, self._free, on_free)

    def _free(self, on_free: Callable[[], None]) -> None:
        self.in_use -= 1
        on_free()
