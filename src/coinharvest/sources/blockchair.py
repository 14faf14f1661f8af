"""Blockchair chain statistics.

Endpoints (reference §3.1): ``GET {base}/stats`` answers every supported chain in one
request (``{"data": {"<chain>": {"data": {…}}}}``); ``GET {base}/{chain}/stats`` answers one
(``{"data": {…}}``). Both cost 1. A batch of one chain uses the smaller per-chain answer,
a batch of several uses ``/stats``: one request either way. The key
(``BLOCKCHAIR_API_KEY``) goes in the ``key`` query parameter and is redacted everywhere.

Limits and errors: keyless use is 30 requests per minute (hard) and 1,440 a day. The HTTP
status mirrors ``context.code``: 429, 430/434 (IP blacklisted), 435-437 (soft limits) and
402 *with* "exceeded" in the message are rate limits (`RateLimited`); 402 "Invalid API
token" is a `ClientError`. Default limits: 2 in flight, 2000 ms apart, 30 per minute (the
published hard limit, spaced like the reference project's limiter).

Metrics: ``tx_count_24h`` is a real transaction count (``transactions_24h``), unlike 3xpl's
events. ``volume_24h`` is on-chain output volume in base units (satoshi, wei, …); it is
reported in native units as ``onchain_volume_24h`` and, priced with the same answer's
``market_price_usd``, as ``onchain_volume_24h_usd``. It includes change outputs, so it
overstates economic value; chains whose base unit is not known here get neither.

Sample output for ``DASH`` (chain ``dash``)::

    Observation("DASH", "blockchair", "tx_count_24h", 17423.0, ...)
    Observation("DASH", "blockchair", "block_height", 2379512.0, ...)
    Observation("DASH", "blockchair", "mempool_tx", 12.0, ...)
    Observation("DASH", "blockchair", "onchain_volume_24h", 1512345.67890123, ...)  # DASH
    Observation("DASH", "blockchair", "onchain_volume_24h_usd", 36099691.7, ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from coinharvest.errors import ClientError
from coinharvest.models import Coin, SourceLimits
from coinharvest.sources.base import FetchResult, observations, per_coin
from coinharvest.sources.fields import JsonReader
from coinharvest.sources.http import HttpSource

__all__ = ["BASE_UNIT_DECIMALS", "BlockchairSource"]

#: Decimals of each chain's base unit (satoshi = 1e-8 BTC, wei = 1e-18 ETH, ...).
BASE_UNIT_DECIMALS: dict[str, int] = {
    "bitcoin": 8,
    "bitcoin-cash": 8,
    "bitcoin-sv": 8,
    "litecoin": 8,
    "dogecoin": 8,
    "dash": 8,
    "groestlcoin": 8,
    "zcash": 8,
    "ecash": 2,
    "monero": 12,
    "ethereum": 18,
}
_LIMIT_STATUSES = frozenset({429, 430, 434, 435, 436, 437})
_FIELDS = {
    "transactions_24h": "tx_count_24h",
    "best_block_height": "block_height",
    "mempool_transactions": "mempool_tx",
}


class BlockchairSource(HttpSource):
    """Blockchair ``/stats`` and ``/{chain}/stats`` (see the module docstring)."""

    name = "blockchair"
    default_limits = SourceLimits(max_concurrency=2, min_interval_s=2.0, rate_per_window=30)
    #: ``/stats`` answers every chain at once; no real batch comes near this.
    batch_size = 100
    default_base_url = "https://api.blockchair.com"

    def auth_params(self) -> dict[str, str]:
        """``key=<key>`` when a key is configured."""
        return {"key": self.api_key} if self.api_key else {}

    def is_rate_limited(self, status: int, message: str) -> bool:
        """429/430/434-437, and 402 when it says a limit was exceeded (not a bad key)."""
        return status in _LIMIT_STATUSES or (status == 402 and "exceeded" in message.lower())

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        """One request: ``/{chain}/stats`` for a single chain, else ``/stats``."""
        chains = list(dict.fromkeys(coin.id_at(self.name) for coin in coins))
        reader = JsonReader(self.name)
        if len(chains) == 1:
            stats = await self._one(reader, chains[0])
        else:
            stats = _all(reader, await self.http.get_json("/stats"), chains)
        now = datetime.now(UTC)
        return per_coin(
            self.name, coins, stats, lambda c, v: observations(c.symbol, self.name, v, now)
        )

    async def _one(self, reader: JsonReader, chain: str) -> dict[str, dict[str, float]]:
        path = f"/{chain}/stats"
        try:
            document = await self.http.get_json(path)
        except ClientError as exc:
            if exc.status == 404:  # "An unknown endpoint": Blockchair has no such chain
                return {}
            raise
        top = reader.object(document, path)
        data = reader.object(reader.field(top, "data", path), f"{path}.data")
        return {chain: _metrics(reader, chain, data, f"{path}.data")}


def _all(reader: JsonReader, document: Any, chains: list[str]) -> dict[str, dict[str, float]]:
    """Metrics of the asked `chains` found in a ``/stats`` answer (others are not inspected)."""
    top = reader.object(document, "/stats")
    data = reader.object(reader.field(top, "data", "/stats"), "/stats.data")
    found: dict[str, dict[str, float]] = {}
    for chain in chains:
        if chain in data:
            where = f"/stats.data.{chain}"
            wrapper = reader.object(data[chain], where)
            stats = reader.object(reader.field(wrapper, "data", where), f"{where}.data")
            found[chain] = _metrics(reader, chain, stats, f"{where}.data")
    return found


def _metrics(reader: JsonReader, chain: str, stats: dict[str, Any], where: str) -> dict[str, float]:
    """The metrics of one chain's stats object."""
    metrics = {
        metric: reader.required_number(reader.field(stats, key, where), f"{where}.{key}")
        for key, metric in _FIELDS.items()
    }
    decimals = BASE_UNIT_DECIMALS.get(chain)
    if decimals is not None:
        base = reader.required_number(
            reader.field(stats, "volume_24h", where), f"{where}.volume_24h"
        )
        native = base / 10**decimals
        metrics["onchain_volume_24h"] = native
        price = reader.number(
            reader.field(stats, "market_price_usd", where),
            f"{where}.market_price_usd",
            nullable=True,
        )
        if price is not None:
            metrics["onchain_volume_24h_usd"] = native * price
    return metrics
