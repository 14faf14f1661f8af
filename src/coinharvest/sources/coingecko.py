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

Default limits follow the plan (docs/upstreams.md cites each figure):

- ``public`` (keyless, per IP, documented as 5-15 calls a minute and varying): 1 in flight,
  12 s apart, 5 per minute, the bottom of that range (with a key set, ``demo``'s limits);
- ``demo``: the seed's 3 in flight, 2000 ms apart, 30 per minute, the figure the demo plan
  itself sends as ``x-ratelimit-limit: 30`` (its newer 100/min page is not relied on);
- ``pro``: 5 in flight, 250 ms apart, 250 per minute (Basic, the smallest paid plan).

Sample output for ``BTC`` (coin id ``bitcoin``)::

    Observation("BTC", "coingecko", "price_usd", 91234.5, 2026-11-28T10:00:00Z)
    Observation("BTC", "coingecko", "market_cap_usd", 1.82e12, ...)
    Observation("BTC", "coingecko", "volume_24h_usd", 3.6e10, ...)   # exchange volume
    Observation("BTC", "coingecko", "price_change_24h_pct", -1.84, ...)
    Observation("BTC", "coingecko", "circulating_supply", 19954000.0, ...)

Unknown values (every metric is ``nullable`` in CoinGecko's OpenAPI spec): a ``null`` or
missing field produces no observation for that metric, and a note in the run's record. A
``0`` for ``current_price``, ``market_cap`` or ``circulating_supply`` means "unknown" (a
recorded answer has ``market_cap: 0`` and ``circulating_supply: 0`` next to a real price and
volume; no listed coin trades at exactly $0): nothing is stored for it either. A ``0``
``total_volume`` is kept: a coin nobody traded in 24 h has a true volume of zero. An item
that is not an object or has no ``id`` cannot be matched to a coin and is skipped; the
coins it may have been are then reported unknown, and the rest of the batch is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal, Self

from coinharvest.config import Settings
from coinharvest.logs import get_logger
from coinharvest.models import Coin, SourceLimits
from coinharvest.sources.base import FetchResult, per_coin
from coinharvest.sources.fields import JsonReader
from coinharvest.sources.http import HttpOptions, HttpSource
from coinharvest.sources.reading import Reading

__all__ = ["COINGECKO_HOSTS", "MARKET_FIELDS", "MAX_IDS", "PLAN_LIMITS", "CoinGeckoSource"]

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
#: Fields whose ``0`` means "unknown" at CoinGecko (see the module docstring).
ZERO_IS_UNKNOWN = frozenset({"current_price", "market_cap", "circulating_supply"})
#: Default limits per plan (see the module docstring).
PLAN_LIMITS: dict[str, SourceLimits] = {
    "public": SourceLimits(max_concurrency=1, min_interval_s=12.0, rate_per_window=5),
    "demo": SourceLimits(
        max_concurrency=3, min_interval_s=2.0, rate_per_window=30, quota_per_month=10_000
    ),
    "pro": SourceLimits(
        max_concurrency=5, min_interval_s=0.25, rate_per_window=250, quota_per_month=100_000
    ),
}
_PATH = "/coins/markets"
log = get_logger("source:coingecko")


class CoinGeckoSource(HttpSource):
    """CoinGecko ``/coins/markets`` (see the module docstring)."""

    name = "coingecko"
    default_limits = PLAN_LIMITS["public"]
    batch_size = MAX_IDS
    #: The registry refuses a configured batch size above this.
    max_batch_size = MAX_IDS
    default_base_url = COINGECKO_HOSTS["public"]

    def __init__(self, options: HttpOptions | None = None, *, plan: Plan = "public") -> None:
        self.plan: Plan = plan
        # A key on the public plan is sent as a demo key, so it gets the demo plan's limits.
        keyed_public = plan == "public" and bool(options and options.api_key)
        self.default_limits = PLAN_LIMITS["demo" if keyed_public else plan]
        options = options or HttpOptions()
        if options.base_url is None:
            options = replace(options, base_url=COINGECKO_HOSTS[plan])
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
        return per_coin(self.name, coins, items, lambda c, r: r.answer(c.symbol, now))


def _index(reader: JsonReader, document: Any) -> dict[str, Reading]:
    """Coin id -> what its item said, for every item of the answer that names a coin."""
    items: dict[str, Reading] = {}
    skipped = 0
    for i, raw in enumerate(reader.array(document, _PATH)):
        where = f"{_PATH}[{i}]"
        coin_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(coin_id, str) or not coin_id:
            skipped += 1
            continue
        reading = Reading("coingecko", where)
        for key, metric in MARKET_FIELDS.items():
            reading.number(raw, key, metric, unknown=(0,) if key in ZERO_IS_UNKNOWN else ())
        items[coin_id] = reading
    if skipped:  # one line per answer, however many junk items it held
        log.warning("coingecko: %d item(s) of %s had no coin id; skipped", skipped, _PATH)
    return items
