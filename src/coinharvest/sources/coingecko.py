"""CoinGecko market data, up to 250 coins per request.

Endpoint: ``GET {base}/coins/markets?vs_currency=usd&ids=<id,id,…>&per_page=<n>&page=1``
(reference §1.3: at most 250 ids and ``per_page`` 1…250; unknown ids are simply absent from
the answer, a JSON array in market-cap order). So 11 coins cost 1 request, 1,000 cost 4.

Plan (``COINGECKO_PLAN``) picks the host and the key header (``COINGECKO_API_KEY``):

- ``public``: ``https://api.coingecko.com/api/v3``, no key (a key, if set, is sent as a demo key);
- ``demo``: same host, header ``x-cg-demo-api-key``;
- ``pro``: ``https://pro-api.coingecko.com/api/v3``, header ``x-cg-pro-api-key``.

``COINGECKO_BASE_URL`` replaces the host, keeping the plan's header. A wrong key or host
(400, error codes 10010/10011) or a missing one (401, 10002) fails the job's coins with a
`ClientError` carrying CoinGecko's message.

Default limits are the seed's: 3 in flight, 2000 ms between starts, 30 per minute (the
demo plan's published figure; the newer 100/min page is not relied on).

Sample output for ``BTC`` (coin id ``bitcoin``)::

    Observation("BTC", "coingecko", "price_usd", 91234.5, 2026-11-28T10:00:00Z)
    Observation("BTC", "coingecko", "market_cap_usd", 1.82e12, ...)
    Observation("BTC", "coingecko", "volume_24h_usd", 3.6e10, ...)   # exchange volume
    Observation("BTC", "coingecko", "price_change_24h_pct", -1.84, ...)
    Observation("BTC", "coingecko", "circulating_supply", 19954000.0, ...)

A ``null`` value (illiquid coins) produces no observation for that metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Self

from coinharvest.config import Settings
from coinharvest.models import Coin, SourceLimits
from coinharvest.sources.base import FetchResult, observations, per_coin
from coinharvest.sources.fields import JsonReader
from coinharvest.sources.http import HttpOptions, HttpSource

__all__ = ["COINGECKO_HOSTS", "MARKET_FIELDS", "MAX_IDS", "CoinGeckoSource"]

Plan = Literal["public", "demo", "pro"]

#: Most ids one ``/coins/markets`` request may carry (and the largest ``per_page``).
MAX_IDS = 250
COINGECKO_HOSTS: dict[str, str] = {
    "public": "https://api.coingecko.com/api/v3",
    "demo": "https://api.coingecko.com/api/v3",
    "pro": "https://pro-api.coingecko.com/api/v3",
}
_KEY_HEADERS: dict[str, str] = {
    "public": "x-cg-demo-api-key",
    "demo": "x-cg-demo-api-key",
    "pro": "x-cg-pro-api-key",
}
#: ``/coins/markets`` field -> metric name.
MARKET_FIELDS: dict[str, str] = {
    "current_price": "price_usd",
    "market_cap": "market_cap_usd",
    "total_volume": "volume_24h_usd",
    "price_change_percentage_24h": "price_change_24h_pct",
    "circulating_supply": "circulating_supply",
}
_PATH = "/coins/markets"


class CoinGeckoSource(HttpSource):
    """CoinGecko ``/coins/markets`` (see the module docstring)."""

    name = "coingecko"
    default_limits = SourceLimits(max_concurrency=3, min_interval_s=2.0, rate_per_window=30)
    batch_size = MAX_IDS
    #: The registry refuses a configured batch size above this.
    max_batch_size = MAX_IDS
    default_base_url = COINGECKO_HOSTS["public"]

    def __init__(self, options: HttpOptions | None = None, *, plan: Plan = "public") -> None:
        self.plan: Plan = plan
        options = options or HttpOptions()
        if options.base_url is None:
            options = HttpOptions(
                COINGECKO_HOSTS[plan], options.api_key, options.timeout_s, options.transport
            )
        super().__init__(options)

    @classmethod
    def from_settings(cls, settings: Settings, options: HttpOptions) -> Self:
        """Build with ``COINGECKO_PLAN``."""
        return cls(options, plan=settings.coingecko_plan)

    def auth_headers(self) -> dict[str, str]:
        """The plan's key header, when a key is configured."""
        return {_KEY_HEADERS[self.plan]: self.api_key} if self.api_key else {}

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        """One ``/coins/markets`` request for all `coins` (at most `MAX_IDS` distinct ids)."""
        ids = list(dict.fromkeys(coin.id_at(self.name) for coin in coins))
        if len(ids) > MAX_IDS:
            raise ValueError(f"{self.name}: {len(ids)} ids in one request, max {MAX_IDS}")
        params = {
            "vs_currency": "usd",
            "ids": ",".join(ids),
            "per_page": str(max(1, len(ids))),
            "page": "1",
            "sparkline": "false",
        }
        items = _index(JsonReader(self.name), await self.http.get_json(_PATH, params))
        now = datetime.now(UTC)
        return per_coin(
            self.name, coins, items, lambda c, v: observations(c.symbol, self.name, v, now)
        )


def _index(reader: JsonReader, document: Any) -> dict[str, dict[str, float | None]]:
    """Coin id -> metric -> value, for every item of the answer (all read before any is used)."""
    items: dict[str, dict[str, float | None]] = {}
    for i, raw in enumerate(reader.array(document, _PATH)):
        where = f"{_PATH}[{i}]"
        item = reader.object(raw, where)
        coin_id = reader.text(reader.field(item, "id", where), f"{where}.id")
        items[coin_id] = {
            metric: reader.number(reader.field(item, key, where), f"{where}.{key}", nullable=True)
            for key, metric in MARKET_FIELDS.items()
        }
    return items
