"""An upstream's hidden rate limit: starts per rolling window, per key, that it really allows.

``capacity.hidden_rate`` starts per ``capacity.hidden_window_s`` may differ from the
configured ``limits`` (which model the documented ones). Same counting rule as
:mod:`coinharvest.emulator.limits`: only admitted requests are starts, and a start at
time ``s`` occupies the window ``(s, s + window_s]``.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RollingWindow"]


class RollingWindow:
    """The starts of one ``(upstream, key)`` still inside a rolling window."""

    __slots__ = ("starts",)

    def __init__(self) -> None:
        self.starts: deque[float] = deque()

    def __repr__(self) -> str:
        return f"<RollingWindow starts={len(self.starts)}>"

    def count(self, window_s: float, now: float) -> int:
        """Starts in the window ending at ``now``."""
        horizon = now - window_s
        while self.starts and self.starts[0] <= horizon:
            self.starts.popleft()
        return len(self.starts)

    def reset_s(self, window_s: float, now: float) -> float:
        """Seconds until the oldest start leaves the window (0 when it is empty)."""
        if not self.count(window_s, now):
            return 0.0
        return max(0.0, self.starts[0] + window_s - now)

    def record(self, now: float) -> None:
        """Count an admitted start at ``now``."""
        self.starts.append(now)
