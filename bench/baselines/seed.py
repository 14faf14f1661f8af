"""The seed's collection algorithm (cfv-metrics-agent), reimplemented faithfully for comparison.

What the seed did (reference/ratelimit-concurrency.md, upstream note and §10):

- a global pool of ``MAX_COLLECTION_CONCURRENCY`` **coins**: start a coin's task, add it to
  a set; when the set is full, ``asyncio.wait(FIRST_COMPLETED)`` before starting the next;
- per coin, one request per source (no batching: ``source.fetch([coin])``), the sources
  one after the other;
- each source's Bottleneck limiter awaited **inside** the coin's slot, so a coin queued on
  a slow source holds a global slot the whole time;
- on HTTP 429, a fixed retry delay (5 s in the seed, scaled here) slept inside the slot,
  ignoring ``Retry-After``; then the request is scheduled on the limiter again;
- the old sequential mode (``MAX_COLLECTION_CONCURRENCY=1`` + ``DELAY_BETWEEN_COINS_MS``):
  collect a coin, sleep the delay, collect the next.

It uses the same `Source` objects (same HTTP client) as coinharvest. It is a benchmark
baseline only: nothing in ``src/`` uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.baselines.limiter import BottleneckLimiter
from coinharvest.errors import RateLimited, SourceError, TransientError
from coinharvest.models import Coin, SourceLimits
from coinharvest.sources.base import Source

__all__ = ["BaselineRequest", "BaselineSummary", "SeedCollector"]

#: Attempts per request (first try + retries), as in the seed.
SEED_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class BaselineRequest:
    """One request the baseline made (times relative to the run's start)."""

    source: str
    symbol: str
    started_s: float
    ended_s: float
    status: str  # "ok", "rate_limited", "error"


@dataclass(slots=True)
class BaselineSummary:
    """What a baseline run did."""

    duration_s: float = 0.0
    coins_ok: int = 0
    coins_failed: int = 0
    coins_done: int = 0
    finished: bool = True
    requests: list[BaselineRequest] = field(default_factory=list)
    completed_s: dict[str, float] = field(default_factory=dict)  # symbol -> completion time

    @property
    def rate_limited(self) -> int:
        """Requests answered 429."""
        return sum(1 for r in self.requests if r.status == "rate_limited")


class SeedCollector:
    """Collects coins the seed's way (see the module docstring).

    :param limits: per source, the limits its Bottleneck limiter enforces.
    :param retry_delay_s: the fixed wait after a 429 (the seed's 5 s, times the bench scale).
    :param delay_s: the old sequential mode's delay between coins (only with max 1).
    """

    def __init__(
        self,
        sources: Mapping[str, Source],
        limits: Mapping[str, SourceLimits],
        *,
        max_concurrency: int,
        retry_delay_s: float,
        delay_s: float = 0.0,
    ) -> None:
        self.sources = dict(sources)
        self.limiters = {n: BottleneckLimiter(n, limits[n]) for n in self.sources}
        self.max_concurrency = max_concurrency
        self.retry_delay_s = retry_delay_s
        self.delay_s = delay_s
        self._t0 = 0.0
        self._summary = BaselineSummary()

    async def run(
        self, coins: Sequence[Coin], *, time_cap_s: float | None = None
    ) -> BaselineSummary:
        """Collect `coins`; stop (and mark the summary unfinished) after `time_cap_s`."""
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._summary = summary = BaselineSummary()
        try:
            async with asyncio.timeout(time_cap_s):
                if self.max_concurrency == 1 and self.delay_s > 0:
                    await self._sequential(coins)
                else:
                    await self._pool(coins)
        except TimeoutError:
            summary.finished = False
        summary.duration_s = loop.time() - self._t0
        return summary

    async def _sequential(self, coins: Sequence[Coin]) -> None:
        for i, coin in enumerate(coins):
            if i:
                await asyncio.sleep(self.delay_s)
            await self._collect(coin)

    async def _pool(self, coins: Sequence[Coin]) -> None:
        pending: set[asyncio.Task[None]] = set()
        try:
            for coin in coins:
                if len(pending) >= self.max_concurrency:
                    _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                pending.add(asyncio.create_task(self._collect(coin)))
            if pending:
                await asyncio.wait(pending)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _collect(self, coin: Coin) -> None:
        ok = True
        for chain in coin.chains:
            ok = await self._request(chain[0], coin) and ok
        summary = self._summary
        summary.coins_done += 1
        if ok:
            summary.coins_ok += 1
        else:
            summary.coins_failed += 1
        summary.completed_s[coin.symbol] = self._now()

    async def _request(self, name: str, coin: Coin) -> bool:
        """One source for one coin, with the seed's fixed-delay retries; True on success."""
        for attempt in range(1, SEED_ATTEMPTS + 1):
            async with self.limiters[name]:
                started = self._now()
                status = await self._fetch(name, coin)
                self._summary.requests.append(
                    BaselineRequest(name, coin.symbol, started, self._now(), status)
                )
            if status == "ok":
                return True
            if status == "error" or attempt == SEED_ATTEMPTS:
                return False
            await asyncio.sleep(self.retry_delay_s)  # inside the coin's slot
        return False

    async def _fetch(self, name: str, coin: Coin) -> str:
        try:
            answer = await self.sources[name].fetch([coin])
        except RateLimited:
            return "rate_limited"
        except TransientError:
            return "retry"
        except SourceError:
            return "error"
        got = answer.get(coin.symbol)
        return "ok" if isinstance(got, list) else "error"

    def _now(self) -> float:
        return asyncio.get_running_loop().time() - self._t0
