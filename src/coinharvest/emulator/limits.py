"""Server-side enforcement of an upstream's limits, per API key.

One :class:`KeyLimiter` holds the state of one ``(upstream, key)`` pair. All decisions use
the server's monotonic clock in seconds (float, sub-millisecond resolution), so a client
that spaces its request starts 1 ms closer than ``min_interval_ms`` is caught, and one that
respects the spacing never is.

Counting rule: only *admitted* requests are starts. A rejected request moves neither the
spacing clock, nor the rolling window, nor the daily/monthly counters, and never counts as
in flight. A client that keeps hammering is therefore rejected only while it is actually
too fast, which is how a token-less "N per window" server behaves.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from dataclasses import dataclass

from coinharvest.emulator.config import LimitConfig

__all__ = ["KeyLimiter", "Rejection", "ceil_seconds"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request was refused.

    :ivar kinds: every limit the request broke, most immediate first
        (``concurrency``, ``spacing``, ``window``, ``daily``, ``monthly``).
    :ivar retry_after_s: seconds until the request would have been admitted.
    :ivar limit: the window's allowance (for ``x-ratelimit-limit``), if any.
    :ivar remaining: starts still allowed in the window now (for ``x-ratelimit-remaining``).
    :ivar details: one human-readable explanation per kind.
    """

    kinds: tuple[str, ...]
    retry_after_s: float
    limit: int | None
    remaining: int
    details: tuple[str, ...] = ()


def _seconds_to_next_day(now: dt.datetime) -> float:
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def _seconds_to_next_month(now: dt.datetime) -> float:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return (dt.datetime(year, month, 1, tzinfo=dt.UTC) - now).total_seconds()


class KeyLimiter:
    """State of one key: in-flight count, last start, window of starts, day/month counters."""

    __slots__ = ("day", "day_count", "in_flight", "last_start", "month", "month_count", "starts")

    def __init__(self) -> None:
        self.in_flight = 0
        self.last_start: float | None = None
        self.starts: deque[float] = deque()
        self.day = ""
        self.day_count = 0
        self.month = ""
        self.month_count = 0

    def __repr__(self) -> str:
        return (
            f"<KeyLimiter in_flight={self.in_flight} window={len(self.starts)} "
            f"day={self.day_count} month={self.month_count}>"
        )

    def try_start(self, limits: LimitConfig, now: float, wall: dt.datetime) -> Rejection | None:
        """Admit a request at monotonic ``now`` (and UTC ``wall``) or say why not.

        On admission the start is recorded and ``in_flight`` goes up; the caller must call
        :meth:`finish` when the response is sent.
        """
        rejection = self.check(limits, now, wall)
        if rejection is None:
            self.record(now)
        return rejection

    def check(self, limits: LimitConfig, now: float, wall: dt.datetime) -> Rejection | None:
        """Why a request at ``now`` would be refused, or ``None``; records nothing.

        Follow an admission with :meth:`record` (:meth:`try_start` does both).
        """
        self._roll_calendar(wall)
        self._expire(limits, now)
        broken: list[tuple[str, float, str]] = []
        self._check_flow(limits, now, broken)
        self._check_caps(limits, wall, broken)
        if not broken:
            return None
        remaining = max(0, limits.rate - len(self.starts)) if limits.rate else 0
        kinds, waits, details = zip(*broken, strict=True)
        return Rejection(kinds, max(waits), limits.rate, remaining, details)

    def finish(self) -> None:
        """Mark one admitted request as finished."""
        self.in_flight -= 1

    def window_reset_s(self, limits: LimitConfig, now: float) -> float:
        """Seconds until the oldest start in the window leaves it (0 if the window is empty)."""
        self._expire(limits, now)
        return max(0.0, self.starts[0] + limits.window_s - now) if self.starts else 0.0

    def window_count(self, limits: LimitConfig, now: float) -> int:
        """Starts in the rolling window ending at ``now``."""
        self._expire(limits, now)
        return len(self.starts)

    def _check_flow(
        self, limits: LimitConfig, now: float, broken: list[tuple[str, float, str]]
    ) -> None:
        if limits.max_in_flight is not None and self.in_flight >= limits.max_in_flight:
            detail = f"{self.in_flight} in flight, max {limits.max_in_flight}"
            broken.append(("concurrency", 0.001, detail))
        if limits.min_interval_ms is not None and self.last_start is not None:
            gap = now - self.last_start
            interval = limits.min_interval_ms / 1000.0
            if gap < interval:
                detail = f"{gap * 1000:.3f} ms since last start, min {limits.min_interval_ms:g} ms"
                broken.append(("spacing", interval - gap, detail))
        if limits.rate is not None and len(self.starts) >= limits.rate:
            detail = f"{len(self.starts)} starts in {limits.window_s:g} s, max {limits.rate}"
            broken.append(("window", self.starts[0] + limits.window_s - now, detail))

    def _check_caps(
        self, limits: LimitConfig, wall: dt.datetime, broken: list[tuple[str, float, str]]
    ) -> None:
        if limits.daily_cap is not None and self.day_count >= limits.daily_cap:
            detail = f"{self.day_count} starts today, cap {limits.daily_cap}"
            broken.append(("daily", _seconds_to_next_day(wall), detail))
        if limits.monthly_cap is not None and self.month_count >= limits.monthly_cap:
            detail = f"{self.month_count} starts this month, cap {limits.monthly_cap}"
            broken.append(("monthly", _seconds_to_next_month(wall), detail))

    def _expire(self, limits: LimitConfig, now: float) -> None:
        # A start at time s occupies the window (s, s + window_s]: it leaves at s + window_s.
        horizon = now - limits.window_s
        while self.starts and self.starts[0] <= horizon:
            self.starts.popleft()

    def _roll_calendar(self, wall: dt.datetime) -> None:
        day, month = wall.strftime("%Y-%m-%d"), wall.strftime("%Y-%m")
        if day != self.day:
            self.day, self.day_count = day, 0
        if month != self.month:
            self.month, self.month_count = month, 0

    def record(self, now: float) -> None:
        """Count an admitted start at ``now`` (it is in flight until :meth:`finish`)."""
        self.in_flight += 1
        self.last_start = now
        self.starts.append(now)
        self.day_count += 1
        self.month_count += 1


def ceil_seconds(seconds: float) -> int:
    """Whole seconds for a ``Retry-After`` header (at least 1)."""
    return max(1, math.ceil(seconds))
