"""A simulated source: configurable latency, failures and 429s, no network.

Used by ``coinharvest verify`` (the seed's concurrency verification) and by the engine's
tests. It honours the `Source` contract exactly like a real source would, so the engine
cannot tell the difference: it sleeps for the batch's latency (on the event loop's clock,
so a test's virtual clock speeds it up), then returns observations or raises.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from coinharvest.errors import RateLimited, SourceError, TransientError, UnknownCoin
from coinharvest.models import Coin, Observation, SourceLimits
from coinharvest.sources.base import FetchResult, Source

__all__ = ["SimulatedSource"]


class SimulatedSource(Source):
    """A source whose behaviour is set by its constructor.

    - `latencies`: seconds per coin symbol; a batch takes the longest of its coins;
      others take `default_latency`.
    - `failure_rate`: probability that a request fails with a transient error (500).
    - `rate_limit_rate`: probability that a request is answered 429 with `retry_after`.
    - `unknown`: symbols this source does not know (they fail with `UnknownCoin`).
    - `calls`: every request made, as ``(loop time at start, symbols)`` — for tests.
    """

    def __init__(
        self,
        name: str = "simulated",
        *,
        latencies: Mapping[str, float] | None = None,
        default_latency: float = 0.0,
        failure_rate: float = 0.0,
        rate_limit_rate: float = 0.0,
        retry_after: float | None = 1.0,
        unknown: frozenset[str] = frozenset(),
        limits: SourceLimits | None = None,
        batch_size: int = 1,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.latencies = dict(latencies or {})
        self.default_latency = default_latency
        self.failure_rate = failure_rate
        self.rate_limit_rate = rate_limit_rate
        self.retry_after = retry_after
        self.unknown = unknown
        self.default_limits = limits or SourceLimits(max_concurrency=1_000_000)
        self.batch_size = batch_size
        self.calls: list[tuple[float, tuple[str, ...]]] = []
        self._rng = random.Random(seed)
        self._prices: dict[str, float] = {}  # symbol -> its pseudo-price (`_answer`)

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        """Sleep for the batch's latency, then answer (see the class docstring)."""
        loop = asyncio.get_running_loop()
        self.calls.append((loop.time(), tuple([c.symbol for c in coins])))
        latency = self.default_latency if coins else 0.0
        if self.latencies:  # else every coin takes the default: no need to look each up
            latency = max(
                (self.latencies.get(c.symbol, self.default_latency) for c in coins), default=0.0
            )
        await asyncio.sleep(latency)
        roll = self._rng.random()
        if roll < self.rate_limit_rate:
            raise RateLimited(self.name, self.retry_after)
        if roll < self.rate_limit_rate + self.failure_rate:
            raise TransientError(self.name, "HTTP 500: simulated server error")
        observed_at = datetime.now(UTC)
        return {c.symbol: self._answer(c, observed_at) for c in coins}

    def _answer(self, coin: Coin, observed_at: datetime) -> list[Observation] | SourceError:
        if coin.symbol in self.unknown:
            return UnknownCoin(self.name, coin.id_at(self.name))
        price = self._prices.get(coin.symbol)
        if price is None:
            # A stable pseudo-price per symbol, so repeated runs look like a real series.
            price = self._prices[coin.symbol] = 1.0 + (sum(map(ord, coin.symbol)) % 997) * 3.7
        return [
            Observation(coin.symbol, self.name, "price_usd", price, observed_at),
            Observation(coin.symbol, self.name, "tx_count_24h", price * 100, observed_at),
        ]
