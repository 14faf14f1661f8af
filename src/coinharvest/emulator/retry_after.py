"""Retry-After tracking: a request sent while an earlier ``Retry-After`` still runs.

Such a request is an ``early_retry`` violation (it is otherwise handled normally), unless
it came within :data:`EARLY_RETRY_GRACE_S` of the rejection: it may have been sent before
the client saw it.
"""

from __future__ import annotations

from coinharvest.emulator.stats import Stats

__all__ = ["EARLY_RETRY_GRACE_S", "RetryAfterWatch"]

#: A request this soon after a rejection may have been sent before the client saw it.
EARLY_RETRY_GRACE_S = 0.05


class RetryAfterWatch:
    """The running Retry-After window of each ``(upstream, key)``; early retries go to stats."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._until: dict[tuple[str, str], tuple[float, float]] = {}

    def check(self, name: str, key: str, now: float) -> None:
        """Count an ``early_retry`` violation if ``key`` is still inside its window."""
        window = self._until.get((name, key))
        if window is None:
            return
        rejected_at, until = window
        if now >= until:
            del self._until[(name, key)]
        elif now - rejected_at > EARLY_RETRY_GRACE_S:
            detail = f"{(until - now) * 1000:.0f} ms before Retry-After expired"
            self._stats.violation(name, key, "early_retry", detail)

    def remember(self, name: str, key: str, now: float, seconds: int) -> None:
        """A rejection carrying ``Retry-After: seconds`` was sent to ``key`` at ``now``."""
        # While a Retry-After is running, later rejections extend it but keep the first
        # rejection time: the grace is only for requests already in flight when it was sent.
        rejected_at, until = self._until.get((name, key), (now, now))
        if now >= until:
            rejected_at = now
        self._until[(name, key)] = (rejected_at, max(until, now + seconds))
