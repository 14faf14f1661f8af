"""The back-off policy: how long the engine waits before a job's next attempt (DESIGN §4).

What the *server* asked for (Retry-After and friends) is parsed by the sources' HTTP layer
(`coinharvest.sources.retry_after`) and arrives here as ``retry_after``. Jitter only ever
*adds* to a server's requested wait: shortening it walks straight back into the limit.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

__all__ = ["RetryPolicy"]


@dataclass(slots=True)
class RetryPolicy:
    """How long to wait before attempt ``attempt + 1`` (attempts are 1-based).

    - rate limited with a hint RA (capped at `max_pause_s`): ``RA + U(0, min(1 s, 0.1·RA))``
      (jitter only adds);
    - rate limited without a hint: equal jitter ``U(b/2, b)``, never less than `min_wait_s`;
    - transient error: full jitter ``U(0, b)``;

    where ``b = min(cap_s, base_s · 2^(attempt−1))``.
    """

    base_s: float = 1.0
    cap_s: float = 60.0
    max_attempts: int = 4
    rng: random.Random = field(default_factory=random.Random)
    #: The longest pause a server may impose (``MAX_COOLDOWN_SECONDS``): a Retry-After of a
    #: day, of ``inf`` or a reset date 50 years ahead must not stop a source for good.
    max_pause_s: float = 300.0

    def server_wait(self, retry_after: float | None) -> float | None:
        """The server's requested wait, capped at `max_pause_s` (None: no usable hint)."""
        if retry_after is None or math.isnan(retry_after):
            return None
        return min(max(0.0, retry_after), self.max_pause_s)

    def ceiling(self, attempt: int) -> float:
        """The exponential ceiling b for `attempt`."""
        return float(min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1)))

    def rate_limited_wait(
        self, attempt: int, retry_after: float | None, min_wait_s: float = 0.0
    ) -> float:
        """Seconds to pause the whole source after a 429."""
        retry_after = self.server_wait(retry_after)
        if retry_after is not None:
            return retry_after + self.rng.uniform(0.0, min(1.0, 0.1 * retry_after))
        b = self.ceiling(attempt)
        return max(min_wait_s, self.rng.uniform(b / 2, b))

    def transient_wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retrying a job after a timeout, connection error or 5xx."""
        retry_after = self.server_wait(retry_after)
        if retry_after is not None:
            return retry_after + self.rng.uniform(0.0, min(1.0, 0.1 * retry_after))
        return self.rng.uniform(0.0, self.ceiling(attempt))

    def may_retry(self, attempt: int) -> bool:
        """Whether a job that just made attempt `attempt` may make another."""
        return attempt < self.max_attempts
