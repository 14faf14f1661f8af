"""Which sources a run may send to right now, and why not.

Three reasons to send a source nothing, checked before any of its jobs is queued and again
when one ends:

- **unavailable** as configured (`Source.unavailable()`, e.g. Blockchair without a key): for
  the whole run;
- **blocked** by its upstream earlier in this run (a `Blocked` answer: an IP block): for the
  rest of the run;
- **unreachable**: its `CircuitBreaker` is open (connections keep failing): until the
  breaker's cool-off, shared across runs.

Coins refused here fail at that source with the reason and fall back where they can.
"""

from __future__ import annotations

from collections.abc import Mapping

from coinharvest.engine.breaker import CircuitBreaker
from coinharvest.errors import TransientError
from coinharvest.sources.base import Source

__all__ = ["SourceAccess"]


class SourceAccess:
    """The run's view of which sources may be asked (see the module docstring)."""

    def __init__(
        self, sources: Mapping[str, Source], breakers: Mapping[str, CircuitBreaker]
    ) -> None:
        self._closed: dict[str, str] = {
            name: reason for name, src in sources.items() if (reason := src.unavailable())
        }
        self._breakers = breakers

    def refusal(self, source: str, now: float) -> str | None:
        """Why `source` may not be asked at `now`, or None if it may."""
        if source in self._closed:
            return self._closed[source]
        breaker = self._breakers.get(source)
        if breaker is not None and not breaker.allows(now):
            return breaker.reason(now)
        return None

    def close(self, source: str, reason: str) -> None:
        """Send `source` nothing more in this run (its upstream blocked us)."""
        self._closed[source] = reason

    def answered(self, source: str, outcome: object, now: float, text: str) -> bool:
        """Feed a finished request's outcome to the source's breaker.

        :param text: the outcome's message, already redacted.
        :returns: True if the source just became unreachable (its circuit is open).
        """
        breaker = self._breakers.get(source)
        if breaker is None:
            return False
        if isinstance(outcome, TransientError) and outcome.unreachable:
            return breaker.failure(now, text)
        breaker.success()
        return False
