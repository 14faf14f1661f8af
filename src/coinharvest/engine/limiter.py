"""Per-source admission: in-flight cap, spacing between starts, rolling window, cooldown.

One `SourceLimiter` per source decides, in a single synchronous step against one clock,
whether a request may start *now*, and if not, when it could. Because the check and the
commit happen with no `await` between them, they are atomic under asyncio; no lock and no
background task are needed (DESIGN §3).

The limiter does not queue anyone. Waiting, priorities and the global slot belong to the
dispatcher (see `lane.py` and `dispatch.py`), which asks `ready_at()` to know when to wake and
`try_start()` to commit. That split is deliberate: a job can wait for its source without
holding anything, and commit the source start and the global slot together.

Example::

    lim = SourceLimiter("coingecko", SourceLimits(3, 2.0, 30), clock=loop.time)
    if lim.try_start():
        try:
            ...  # send the request
        finally:
            lim.release()
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable

from coinharvest.engine.quota import QuotaBudget
from coinharvest.models import SourceLimits

__all__ = ["Clock", "SourceLimiter", "loop_clock"]

#: A monotonic clock in seconds. Defaults to the running event loop's clock.
Clock = Callable[[], float]


def loop_clock() -> float:
    """The running event loop's monotonic time (what `asyncio.sleep` and timers use)."""
    return asyncio.get_running_loop().time()


class SourceLimiter:
    """Decides when one source may start its next request.

    Invariants, for the start times it commits (``try_start`` returning True):

    - at most ``cap`` (≤ ``limits.max_concurrency``) started and not yet released;
    - consecutive starts at least ``spacing_s`` (≥ ``limits.min_interval_s``) apart;
    - at most ``limits.rate_per_window`` starts in any half-open window of
      ``limits.window_s`` seconds (a sliding log, so no bursts: "30 per minute" never
      admits a 31st start into any 60 s);
    - no start before ``cooldown_until`` (set from a 429's Retry-After);
    - no start while ``quota`` (per-day / per-month requests) refuses one.

    And, for requests whose transport reports when headers are sent: no request's headers on
    the wire less than ``spacing_s`` after the previous one's (`send_at`).

    ``cap`` and ``spacing_s`` start at the configured limits; an adaptive controller
    (`engine/adaptive.py`) may move them with `adapt`, never past the configured limits.
    """

    __slots__ = (
        "_clock",
        "_last_sent",
        "_last_start",
        "_previous_start",
        "_starts",
        "cap",
        "cooldown_until",
        "in_flight",
        "limits",
        "name",
        "quota",
        "spacing_s",
    )

    def __init__(
        self,
        name: str,
        limits: SourceLimits,
        clock: Clock = loop_clock,
        quota: QuotaBudget | None = None,
    ) -> None:
        if limits.max_concurrency < 1:
            raise ValueError(f"{name}: max_concurrency must be ≥ 1, got {limits.max_concurrency}")
        if limits.min_interval_s < 0:
            raise ValueError(f"{name}: min_interval_s must be ≥ 0, got {limits.min_interval_s}")
        if limits.rate_per_window is not None and limits.rate_per_window < 1:
            raise ValueError(f"{name}: rate_per_window must be ≥ 1, got {limits.rate_per_window}")
        self.name = name
        self.limits = limits
        self._clock = clock
        self.quota = quota
        self.cap = limits.max_concurrency
        self.spacing_s = limits.min_interval_s
        self.in_flight = 0
        self.cooldown_until = float("-inf")
        self._last_start: float | None = None
        self._previous_start: float | None = None  # the start before the last (`forget`)
        # When the last request of this source was seen going on the wire (`sent`).
        self._last_sent = float("-inf")
        # Start times inside the current window, sorted (the sliding log; at most N entries).
        self._starts: list[float] = []

    def __repr__(self) -> str:
        return (
            f"<SourceLimiter {self.name} in_flight={self.in_flight}/{self.cap}"
            f" spacing={self.spacing_s:.3f}"
            f" window={len(self._starts)}/{self.limits.rate_per_window}"
            f" cooldown_until={self.cooldown_until:.3f}>"
        )

    def ready_at(self, now: float | None = None) -> float | None:
        """Earliest clock time at which a start would be admitted, if nothing else changes.

        Returns None when the in-flight cap is full (only a `release()` can change that, so
        there is no time to wait for) or the quota is spent (see `quota_refusal`). A value
        ≤ `now` means "now". `now` defaults to a fresh clock reading; a caller that decides
        several things at one instant passes its own.
        """
        if self.in_flight >= self.cap:
            return None
        if self.quota is not None and self.quota.refusal() is not None:
            return None
        if now is None:
            now = self._clock()
        self._trim(now)
        at = max(now, self.cooldown_until)
        if self._last_start is not None:
            at = max(at, self._last_start + self.spacing_s)
        n = self.limits.rate_per_window
        if n is not None and len(self._starts) >= n:
            # The n-th most recent start must leave the window before another may enter.
            at = max(at, self._starts[-n] + self.limits.window_s)
        return at

    def try_start(self, now: float | None = None) -> bool:
        """Commit a start at `now` (default: the clock) if every limit allows it."""
        if now is None:
            now = self._clock()
        at = self.ready_at(now)
        if at is None or at > now:
            return False
        self.in_flight += 1
        if self.quota is not None:
            self.quota.spend()
        self._previous_start, self._last_start = self._last_start, now
        if self.limits.rate_per_window is not None:
            bisect.insort(self._starts, now)
        return True

    def release(self) -> None:
        """A started request has ended (whatever its outcome)."""
        if self.in_flight <= 0:
            raise RuntimeError(f"{self.name}: release() without a matching start")
        self.in_flight -= 1

    def restamp(self, started: float, sent: float) -> None:
        """A request committed at `started` actually left at `sent` (≥ `started`).

        Counting spacing and the window from the real send time keeps the limits true at the
        server even when the client's event loop was slow to send: later starts wait longer,
        never less.
        """
        if sent <= started:
            return
        if self._last_start is not None:
            self._last_start = max(self._last_start, sent)
        i = bisect.bisect_left(self._starts, started)
        if i < len(self._starts) and self._starts[i] == started:
            del self._starts[i]
            bisect.insort(self._starts, sent)

    def forget(self, started: float) -> None:
        """A request committed at `started` never reached the upstream (no connection could
        be made): it counts against neither the spacing nor the window, so trying again
        (and finding the source dead) costs no spacing."""
        i = bisect.bisect_left(self._starts, started)
        if i < len(self._starts) and self._starts[i] == started:
            del self._starts[i]
        if self._last_start == started:
            self._last_start = self._previous_start

    def send_at(self, now: float) -> float:
        """Earliest time a started request may put its headers on the wire.

        Admission spaces *starts*; but a request admitted later can overtake one still
        opening its connection. Holding each request's headers until `min_interval_s` after
        the last request that went on the wire keeps the spacing true at the server.
        """
        return max(now, self._last_sent + self.spacing_s)

    def sent(self, at: float) -> None:
        """A started request's headers went on the wire at `at`."""
        self._last_sent = max(self._last_sent, at)

    def adapt(self, cap: int, spacing_s: float) -> None:
        """Set the in-flight cap and the spacing an adaptive controller chose, clamped to the
        configured limits (which stay ceilings: never more in flight, never closer starts)."""
        self.cap = max(1, min(cap, self.limits.max_concurrency))
        self.spacing_s = max(spacing_s, self.limits.min_interval_s)

    def quota_refusal(self) -> str | None:
        """Why the quota lets no more requests start (None: it does, or there is none)."""
        return None if self.quota is None else self.quota.refusal()

    def cool_down(self, until: float) -> None:
        """Pause the whole source until clock time `until` (never shortens a pause)."""
        self.cooldown_until = max(self.cooldown_until, until)

    def _trim(self, now: float) -> None:
        horizon = now - self.limits.window_s
        expired = bisect.bisect_right(self._starts, horizon)
        if expired:
            del self._starts[:expired]
