"""A source whose connections keep failing is sent nothing until one probe says it is back.

Without it, a dead upstream (connection refused, DNS or TLS failure, connect timeout) costs
every job of every run its full retry budget, serialised by the source's limiter. One
`CircuitBreaker` per source lives as long as the engine (across runs, in service mode):

- **closed**: requests go out. `failure_threshold` connection failures in a row *open* it.
- **open**: the source's queued and new jobs fail at once with the cause (their coins fall
  back where they can). After `cooloff_s` it turns *half open*.
- **half open**: requests go out again; the first one decides: an answer of any kind (even
  an error status: the upstream is reachable) closes it, a connection failure opens it again
  for another `cooloff_s`.

Only connection failures count (`TransientError.unreachable`); a 5xx, a 429 or a timeout
after connecting says the upstream is there. Every change of state is reported through the
`on_change` callback (the engine's observer: logs, /metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from coinharvest.logs import get_logger

__all__ = ["CircuitBreaker", "CircuitState"]

log = get_logger("engine")

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """One source's breaker (see the module docstring)."""

    def __init__(
        self,
        source: str,
        *,
        failure_threshold: int = 3,
        cooloff_s: float = 30.0,
        on_change: Callable[[str, CircuitState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"{source}: failure_threshold must be ≥ 1, got {failure_threshold}")
        self.source = source
        self.failure_threshold = failure_threshold
        self.cooloff_s = cooloff_s
        self.state: CircuitState = "closed"
        self.failures = 0  # connection failures in a row
        self.last_error = ""
        self.open_until = float("-inf")
        self._on_change = on_change

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.source} {self.state} failures={self.failures}>"

    def allows(self, now: float) -> bool:
        """Whether a request may go out at `now` (an open circuit past its cool-off turns
        half open: the next request is the probe)."""
        if self.state == "open" and now >= self.open_until:
            self._set("half_open")
        return self.state != "open"

    def failure(self, now: float, error: str) -> bool:
        """A request could not connect; True if the circuit is (now) open."""
        self.failures += 1
        self.last_error = error
        if self.state == "half_open" or self.failures >= self.failure_threshold:
            self.open_until = now + self.cooloff_s
            if self.state != "open":
                log.warning(
                    "🔌 %s unreachable %d times in a row; sending it nothing for %.0fs: %s",
                    self.source,
                    self.failures,
                    self.cooloff_s,
                    error,
                )
                self._set("open")
        return self.state == "open"

    def success(self) -> None:
        """A request got an answer (of any kind): the upstream is reachable."""
        self.failures = 0
        if self.state != "closed":
            log.info("🔌 %s reachable again", self.source)
            self._set("closed")

    def reason(self, now: float) -> str:
        """Why jobs fail while the circuit is open."""
        wait = max(0.0, self.open_until - now)
        return (
            f"unreachable ({self.failures} connection failures in a row; next try in "
            f"{wait:.0f} s): {self.last_error}"
        )

    def _set(self, state: CircuitState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(self.source, state)
