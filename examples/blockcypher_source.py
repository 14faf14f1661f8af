"""Example plug-in source for coinharvest: BlockCypher chain summaries.

Endpoint: ``GET {base}/v1/{chain}/main`` (``chain`` is the coin's id at this source:
``btc``, ``ltc``, ``doge``, ``dash``) →
``{"name": "DASH.main", "height": 2379512, "time": "...", "peer_count": 8,
"unconfirmed_count": 12, ...}``. Key: optional ``token`` query parameter
(``BLOCKCYPHER_API_KEY``). An unknown chain answers 404.

Free-tier limits are 3 requests per second and about 100 per hour, so the defaults are one
request in flight, 1 s apart, at most 100 per hour.

Use it with ``EXTRA_SOURCES=blockcypher_source:BlockCypherSource`` (module on the Python
path), or register it under the ``coinharvest.sources`` entry-point group. See
docs/custom-sources.md.

Sample output for ``DASH``::

    Observation("DASH", "blockcypher", "block_height", 2379512.0, ...)
    Observation("DASH", "blockcypher", "mempool_tx", 12.0, ...)
    Observation("DASH", "blockcypher", "peer_count", 8.0, ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from coinharvest.errors import ClientError, UnknownCoin
from coinharvest.models import Coin, SourceLimits
from coinharvest.sources import FetchResult, HttpSource, JsonReader, Reading

__all__ = ["BlockCypherSource"]

_FIELDS = {"height": "block_height", "unconfirmed_count": "mempool_tx", "peer_count": "peer_count"}


class BlockCypherSource(HttpSource):
    """BlockCypher ``/v1/{chain}/main``: one chain per request."""

    name = "blockcypher"
    default_limits = SourceLimits(
        max_concurrency=1, min_interval_s=1.0, rate_per_window=100, window_s=3600
    )
    batch_size = 1
    default_base_url = "https://api.blockcypher.com"

    def auth_params(self) -> dict[str, str]:
        """``token=<key>`` when ``BLOCKCYPHER_API_KEY`` is set (redacted from messages)."""
        return {"token": self.api_key} if self.api_key else {}

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        """One request for the batch's (single) chain."""
        chain = coins[0].id_at(self.name)
        path = f"/v1/{chain}/main"
        try:
            document = await self.http.get_json(path)
        except ClientError as exc:
            if exc.status == 404:
                return {coin.symbol: UnknownCoin(self.name, chain) for coin in coins}
            raise
        summary = JsonReader(self.name).object(document, path)  # not an object: BadResponse
        reading = Reading(self.name, path)
        for key, metric in _FIELDS.items():
            reading.number(summary, key, metric)  # missing/null/not a number: noted, dropped
        now = datetime.now(UTC)
        return {coin.symbol: reading.answer(coin.symbol, now) for coin in coins}
