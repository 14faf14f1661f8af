"""In-process upstream models for the adaptive-limit tests (virtual clock, no network).

- `QueueSource`: a server with a hidden capacity of K requests served at once (a schedule
  of steps); more wait in its FIFO queue, so the answer time grows with the load.
- `HiddenRateSource`: a server that really allows fewer starts per rolling window than the
  client is configured for; over it, a 429 with the Retry-After until a start leaves the
  window; optionally with ``x-ratelimit-*`` headers on every answer.

Both record what they saw, so a test can judge the client the way the upstream would.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from coinharvest.errors import RateLimited
from coinharvest.models import Coin, Observation, SourceLimits
from coinharvest.sources.base import FetchResult, Source
from coinharvest.sources.sending import notify_rate_headers

__all__ = ["HiddenRateSource", "QueueSource", "answer"]


def answer(name: str, coins: Sequence[Coin]) -> FetchResult:
    """A good answer: one price per coin."""
    now = datetime.now(UTC)
    return {c.symbol: [Observation(c.symbol, name, "price_usd", 1.0, now)] for c in coins}


@dataclass
class QueueSource(Source):
    """A server of hidden capacity ``capacity_at(t)``, service time `service_s`."""

    name: str = "queue"
    service_s: float = 0.2
    steps: Sequence[tuple[float, int]] = ((0.0, 8),)  # (from loop time, capacity)
    ceiling: int = 16
    in_service: int = 0
    waiting: list[asyncio.Future[None]] = field(default_factory=list)
    max_in_flight: int = 0
    in_flight: int = 0
    served: list[tuple[float, float]] = field(default_factory=list)  # (arrival, end)
    _scheduled: bool = False

    def __post_init__(self) -> None:
        self.default_limits = SourceLimits(max_concurrency=self.ceiling)
        self.batch_size = 1

    def capacity_at(self, t: float) -> int:
        """The hidden capacity at loop time `t`."""
        times = [at for at, _ in self.steps]
        return self.steps[max(0, bisect.bisect_right(times, t) - 1)][1]

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        loop = asyncio.get_running_loop()
        if not self._scheduled:  # capacity may rise with nobody leaving: look at each step
            self._scheduled = True
            for at, _ in self.steps:
                loop.call_at(max(at, loop.time()), self._pump)
        arrival = loop.time()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            turn: asyncio.Future[None] = loop.create_future()
            self.waiting.append(turn)
            self._pump()
            await turn  # FIFO: served in order of arrival
            try:
                await asyncio.sleep(self.service_s)
            finally:
                self.in_service -= 1
                self._pump()
        finally:
            self.in_flight -= 1
        self.served.append((arrival, loop.time()))
        return answer(self.name, coins)

    def _pump(self) -> None:
        now = asyncio.get_running_loop().time()
        while self.waiting and self.in_service < self.capacity_at(now):
            turn = self.waiting.pop(0)
            if not turn.done():
                self.in_service += 1
                turn.set_result(None)


@dataclass
class HiddenRateSource(Source):
    """Configured for `configured_per_min`, really allows `hidden` starts per `window_s`."""

    name: str = "hidden"
    configured_per_min: int = 30
    hidden: int = 10
    window_s: float = 60.0
    latency_s: float = 0.3
    headers: bool = False
    accepted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    inside_retry_after: int = 0
    _retry_until: float = float("-inf")

    def __post_init__(self) -> None:
        self.default_limits = SourceLimits(
            max_concurrency=3,
            min_interval_s=60.0 / self.configured_per_min,
            rate_per_window=self.configured_per_min,
        )
        self.batch_size = 1

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        now = asyncio.get_running_loop().time()
        if now < self._retry_until:
            self.inside_retry_after += 1
        recent = [t for t in self.accepted if t > now - self.window_s]
        await asyncio.sleep(self.latency_s)
        if len(recent) >= self.hidden:
            wait = recent[-self.hidden] + self.window_s - now
            self._retry_until = max(self._retry_until, now + wait)
            self.refused.append(now)
            self._announce(0, wait)
            raise RateLimited(self.name, wait, "HTTP 429: hidden limit")
        self.accepted.append(now)
        reset = (recent[0] if recent else now) + self.window_s - now
        self._announce(self.hidden - len(recent) - 1, reset)
        return answer(self.name, coins)

    def _announce(self, remaining: int, reset_s: float) -> None:
        if self.headers:
            notify_rate_headers(float(self.hidden), float(remaining), reset_s)
