"""How fast a source may start requests, learned from its 429s and rate-limit headers (AIMD).

The configured rate (``<SRC>_RATE_LIMIT_PER_MINUTE``, ``<SRC>_MIN_INTERVAL_MS``, or the
plan's published figure) is a ceiling; the upstream's real limit may be lower (keyless
limits "vary"; CoinGecko support quoted a user a different figure than its page). The
learned rate is paced as spacing (``60 / rate`` seconds between starts: no bursts).

- **Multiplicative decrease on a 429**, once per round of requests (a request started
  before the last decrease does not decrease again: TCP's one cut per round trip, reference
  §5.6). The rate halves, or falls to what the last window showed the upstream accepts
  (``safety`` × the starts that passed in the window before the refused one) when that is
  lower, but never below a quarter: a rolling-window limit is found with one 429, a
  spacing limit in two or three.
- **The rate that failed is remembered** (``ceiling``): the rate it had, or one start per
  window more than passed, whichever is lower. Recovery stays ``safety`` below it for
  ``probe_after_s`` (20 min), then may probe above: a limit that stays put costs one 429 per
  probe, under 1 % of requests at 10 per minute.
- **Additive increase** after each quiet minute (no 429 since the last change), by an
  eighth of the configured rate, and only if at least half the current rate was used (the
  app-limited guard: idle time is no evidence).
- **Headers.** ``x-ratelimit-limit`` below the configured rate (read as per minute, as
  CoinGecko sends it) sets the ceiling at once (one more than the limit), without a 429.
  ``remaining`` and ``reset`` are not paced over: whether the reset frees the whole window
  (a fixed window) or one start (a rolling one) differs by upstream, and pacing as if fixed
  cost a fifth of the throughput against a rolling window (docs/ADAPTIVE.md);
  ``remaining: 0`` still pauses the source until the reset, and a 429's Retry-After
  cooldown stays.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

from coinharvest.models import SourceLimits

__all__ = ["RateControl", "RateTuning", "configured_rate"]


@dataclass(frozen=True, slots=True)
class RateTuning:
    """The controller's constants (reference §5.6; docs/ADAPTIVE.md has the measurements).

    :ivar decrease: the rate is multiplied by this on a 429.
    :ivar safety: stay this fraction of a discovered or announced limit.
    :ivar quiet_s: a quiet period this long allows one additive step.
    :ivar steps: an additive step is the configured rate / `steps`.
    :ivar probe_after_s: how long a discovered limit caps recovery before a probe above it.
    :ivar floor_per_minute: the rate never goes below this.
    """

    decrease: float = 0.5
    safety: float = 0.9
    quiet_s: float = 60.0
    steps: int = 8
    probe_after_s: float = 1200.0
    floor_per_minute: float = 1.0


def configured_rate(limits: SourceLimits) -> float:
    """The configured start rate per minute: the tighter of the window and the spacing
    (``inf`` when neither is set)."""
    rate = math.inf
    if limits.rate_per_window is not None:
        rate = limits.rate_per_window * 60.0 / limits.window_s
    if limits.min_interval_s > 0:
        rate = min(rate, 60.0 / limits.min_interval_s)
    return rate


class RateControl:
    """The learned start rate of one source, per minute (see the module docstring)."""

    def __init__(self, limits: SourceLimits, tuning: RateTuning | None = None) -> None:
        self.tuning = tuning or RateTuning()
        self.window_s = limits.window_s
        self.configured = configured_rate(limits)
        self.rate = self.configured
        self.ceiling: float | None = None
        self.announced = False  # the ceiling came from the upstream's own headers
        self._ceiling_at = float("-inf")
        self._last_change = float("-inf")
        self._last_decrease = float("-inf")
        self._starts: deque[float] = deque()

    def __repr__(self) -> str:
        return f"<RateControl rate={self.rate:.3g}/min ceiling={self.ceiling}>"

    def spacing_s(self) -> float:
        """Seconds between starts that pace the learned rate; 0 while it is the configured
        rate (the configured spacing and window then apply as they are, bursts included)."""
        return 0.0 if self.rate >= self.configured else 60.0 / self.rate

    def started(self, now: float) -> None:
        """A request started at `now`."""
        self._starts.append(now)
        horizon = now - 2 * self.window_s
        while self._starts and self._starts[0] < horizon:
            self._starts.popleft()

    def restamp(self, started: float, sent: float) -> None:
        """The start recorded at `started` really left at `sent`: count it from then (or a
        refused request, judged by its send time, would count itself among those before)."""
        i = bisect.bisect_left(self._starts, started)
        if i < len(self._starts) and self._starts[i] == started:
            del self._starts[i]
            bisect.insort(self._starts, sent)

    def rate_limited(self, now: float, started_at: float) -> None:
        """The request started at `started_at` was refused with a 429 (seen at `now`)."""
        if started_at <= self._last_decrease:
            return  # already sent when the rate was last cut
        per_start = 60.0 / self.window_s
        i = bisect.bisect_left(self._starts, started_at)
        passed = i - bisect.bisect_left(self._starts, started_at - self.window_s)
        seen = (passed + 1) * per_start  # the refused start's window, per minute
        current = self.rate if math.isfinite(self.rate) else seen
        t = self.tuning
        shown = passed * per_start * t.safety
        new = min(current * t.decrease, max(shown, current * t.decrease**2))
        self.rate = max(t.floor_per_minute, new)
        if not self.announced:
            self._set_ceiling(min(current, max(seen, current * t.decrease)), now)
        self._last_decrease = self._last_change = now

    def announce(self, now: float, limit: float | None) -> None:
        """An answer carried ``x-ratelimit-limit: limit`` (None: it did not)."""
        if limit is not None and 0 < limit < self.configured:
            # `limit` is allowed, so one more is the rate that fails (as after a 429).
            self.announced = True
            self._set_ceiling(limit + 1.0, now)
            self.rate = min(self.rate, (limit + 1.0) * self.tuning.safety)

    def answered(self, now: float) -> None:
        """A request was answered: after a quiet period, step the rate up."""
        if now - self._last_change < self.tuning.quiet_s:
            return
        cap = self._recovery_cap(now)
        if self.rate >= cap:
            return
        used = sum(1 for s in self._starts if s > now - self.window_s) * 60.0 / self.window_s
        if used < self.rate / 2:
            return  # app-limited: the rate was not used, so its success proves nothing
        base = self.configured if math.isfinite(self.configured) else (self.ceiling or self.rate)
        step = max(self.tuning.floor_per_minute, base / self.tuning.steps)
        self.rate = min(cap, self.rate + step)
        self._last_change = now

    def restore(self, rate: float, ceiling: float | None, age_s: float, now: float) -> None:
        """Start from a learned state saved `age_s` seconds ago (0 rate: none learned)."""
        if rate > 0:
            self.rate = max(self.tuning.floor_per_minute, min(rate, self.configured))
        if ceiling is not None and ceiling < self.configured:
            self._set_ceiling(ceiling, now - max(0.0, age_s))
        self._last_change = now - max(0.0, age_s)

    def _set_ceiling(self, ceiling: float, at: float) -> None:
        self.ceiling = ceiling
        self._ceiling_at = at

    def _recovery_cap(self, now: float) -> float:
        if self.ceiling is None:
            return self.configured
        if not self.announced and now - self._ceiling_at >= self.tuning.probe_after_s:
            self.ceiling = None  # time to probe above the limit last found
            return self.configured
        return min(self.configured, self.ceiling * self.tuning.safety)
