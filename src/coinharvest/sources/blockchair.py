"""Blockchair chain statistics.

Endpoints (reference §3.1): ``GET {base}/stats`` answers every supported chain in one
request (``{"data": {"<chain>": {"data": {…}}}}``); ``GET {base}/{chain}/stats`` answers one
(``{"data": {…}}``). Both cost 1. A batch of one chain uses the smaller per-chain answer,
a batch of several uses ``/stats``: one request either way. The key
(``BLOCKCHAIR_API_KEY``) goes in the ``key`` query parameter and is redacted everywhere.

Keys and limits (docs/upstreams.md cites each): Blockchair blocks keyless requests since
July 2025, so without ``BLOCKCHAIR_API_KEY`` the source is *unavailable*: fallback chains
skip it without sending anything, and the run's record says ``blockchair skipped: needs an
API key``. The HTTP status mirrors ``context.code``: 429, 435-437 (soft limits) and 402
*with* "exceeded" in the message are rate limits (`RateLimited`); 402 "Invalid API token"
is a `ClientError`; 430 and 434 (IP blacklisted) are `Blocked`: no retries, and no more
requests to Blockchair for the rest of the run. Default limits: 2 in flight, 2000 ms apart,
30 per minute (the published hard limit, spaced like the reference project's limiter).

Metrics: ``tx_count_24h`` is a real transaction count (``transactions_24h``), unlike 3xpl's
events. ``volume_24h`` is on-chain output volume in base units (satoshi, …); it is reported
in native units as ``onchain_volume_24h`` and, priced with the same answer's
``market_price_usd``, as ``onchain_volume_24h_usd``. It includes change outputs, so it
overstates economic value; chains whose base unit is not known here get neither.

Real answers differ per chain (see tests/fixtures/real/): Ethereum sends no ``volume_24h``
but ``volume_24h_approximate``, a *string* in wei, stored with ``estimated=True`` and low
confidence; Monero sends neither ``transactions_24h`` nor ``volume_24h``. A field that is
missing, null or not a number drops that metric (noted in the run's record), and a chain
whose part of a ``/stats`` answer is malformed fails only that chain's coins.

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

from coinharvest.errors import Blocked, ClientError, SourceError
from coinharvest.models import Coin, SourceLimits
from coinharvest.plausibility import problem
from coinharvest.sources.base import FetchResult, per_coin
from coinharvest.sources.fields import JsonReader
from coinharvest.sources.fields import shown as quoted
from coinharvest.sources.http import HttpSource
from coinharvest.sources.reading import Reading, to_number

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
_LIMIT_STATUSES = frozenset({429, 435, 436, 437})
#: "Your IP address is temporary blacklisted": nothing more to ask in this run.
_BLOCKED_STATUSES = frozenset({430, 434})
_FIELDS = {
    "transactions_24h": "tx_count_24h",
    "best_block_height": "block_height",
    "mempool_transactions": "mempool_tx",
}
#: Why the source is unavailable without a key.
NEEDS_KEY = (
    "needs an API key: Blockchair blocks keyless requests since July 2025 (set BLOCKCHAIR_API_KEY)"
)


class BlockchairSource(HttpSource):
    """Blockchair ``/stats`` and ``/{chain}/stats`` (see the module docstring)."""

    name = "blockchair"
    default_limits = SourceLimits(max_concurrency=2, min_interval_s=2.0, rate_per_window=30)
    #: ``/stats`` answers every chain at once; no real batch comes near this.
    batch_size = 100
    default_base_url = "https://api.blockchair.com"

    def unavailable(self) -> str | None:
        """Without a key Blockchair answers nothing (see the module docstring)."""
        return None if self.api_key else NEEDS_KEY

    def auth_params(self) -> dict[str, str]:
        """``key=<key>`` when a key is configured."""
        return {"key": self.api_key} if self.api_key else {}

    def is_rate_limited(self, status: int, message: str) -> bool:
        """429/435-437, and 402 when it says a limit was exceeded (not a bad key)."""
        return status in _LIMIT_STATUSES or (status == 402 and "exceeded" in message.lower())

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        """One request: ``/{chain}/stats`` for a single chain, else ``/stats``."""
        chains = list(dict.fromkeys(coin.id_at(self.name) for coin in coins))
        reader = JsonReader(self.name)
        stats: dict[str, Reading | SourceError]
        if len(chains) == 1:
            stats = await self._one(reader, chains[0])
        else:
            stats = _all(reader, await self._get("/stats"), chains)
        now = datetime.now(UTC)
        return per_coin(self.name, coins, stats, lambda c, r: r.answer(c.symbol, now))

    async def _get(self, path: str) -> Any:
        try:
            return await self.http.get_json(path)
        except ClientError as exc:
            if exc.status in _BLOCKED_STATUSES:
                advice = (
                    "check BLOCKCHAIR_API_KEY"
                    if self.api_key
                    else "Blockchair needs an API key: set BLOCKCHAIR_API_KEY"
                )
                raise Blocked(
                    self.name,
                    f"{exc.message.removeprefix(f'HTTP {exc.status}: ')} (HTTP {exc.status}, "
                    f"IP blocked); no more requests to it in this run; {advice}",
                ) from None
            raise

    async def _one(self, reader: JsonReader, chain: str) -> dict[str, Reading | SourceError]:
        path = f"/{chain}/stats"
        try:
            document = await self._get(path)
        except ClientError as exc:
            if exc.status == 404:  # "An unknown endpoint": Blockchair has no such chain
                return {}
            raise
        top = reader.object(document, path)
        data = reader.object(reader.field(top, "data", path), f"{path}.data")
        return {chain: _metrics(chain, data, f"{path}.data")}


def _all(reader: JsonReader, document: Any, chains: list[str]) -> dict[str, Reading | SourceError]:
    """What a ``/stats`` answer says of each asked chain; a malformed chain fails alone.

    Chains nobody asked for are not inspected.
    """
    top = reader.object(document, "/stats")
    data = reader.object(reader.field(top, "data", "/stats"), "/stats.data")
    found: dict[str, Reading | SourceError] = {}
    for chain in (c for c in chains if c in data):
        where = f"/stats.data.{chain}"
        try:
            wrapper = reader.object(data[chain], where)
            stats = reader.object(reader.field(wrapper, "data", where), f"{where}.data")
        except SourceError as exc:
            found[chain] = exc
            continue
        found[chain] = _metrics(chain, stats, f"{where}.data")
    return found


def _metrics(chain: str, stats: dict[str, Any], where: str) -> Reading:
    """The metrics of one chain's stats object."""
    reading = Reading("blockchair", where)
    for key, metric in _FIELDS.items():
        reading.number(stats, key, metric)
    decimals = BASE_UNIT_DECIMALS.get(chain)
    if decimals is not None:
        _volume(reading, stats, decimals)
    return reading


def _volume(reading: Reading, stats: dict[str, Any], decimals: int) -> None:
    """On-chain volume in coins and in USD; exact ``volume_24h`` or an approximate string."""
    key = "volume_24h"
    estimated = stats.get(key) is None and stats.get("volume_24h_approximate") is not None
    if estimated:
        key = "volume_24h_approximate"
    native = reading.number(
        stats, key, "onchain_volume_24h", decimals=decimals, estimated=estimated
    )
    if native is None:
        return
    number = to_number(stats.get("market_price_usd"))
    price = None if number is None else float(number)
    if price is None or problem("price_usd", price) is not None:
        shown = stats.get("market_price_usd")
        reading.drop("onchain_volume_24h_usd", f"no usable market_price_usd ({quoted(shown)})")
        return
    reading.put(
        "onchain_volume_24h_usd",
        native * price,
        confidence=reading.confidence_of("onchain_volume_24h"),
        estimated=estimated,
    )
