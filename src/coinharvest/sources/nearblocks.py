"""NearBlocks network statistics for NEAR.

Endpoint: ``GET {base}/v1/stats`` → ``{"stats": [{…}]}``, a one-element array whose numbers
are mostly **strings** (reference §4.1). The key (``NEARBLOCKS_API_KEY``) is sent as
``Authorization: Bearer <key>``. NearBlocks serves only the NEAR network: a coin whose id
here is not ``near`` fails with `UnknownCoin` (and the request is still made for the rest).

Limits: the keyless free plan allows 6 requests per minute, 333 a day (and 10,000 per 30
days with a registered key); its 429 carries no Retry-After. Default: 1 in flight, 10 s
apart, 6 per minute (spacing = 60 s / 6, so a burst never uses the whole minute's allowance
at once), 333 a day, and 10,000 a month when ``NEARBLOCKS_API_KEY`` is set.

Metrics: ``tx_total`` (cumulative), ``tps``, ``avg_block_time_s`` and ``nodes_online`` as
given, plus ``tx_count_24h`` **estimated** from the current ``tps`` × 86,400 (marked
``estimated=True``, `Confidence.LOW`): ``/v1/stats`` has no daily count; NearBlocks'
``/v1/charts/latest`` has one, but a second request per job breaks the one-request rule.
``volume``/``near_price`` are CoinGecko's market figures copied in, so they are not repeated.

Sample output for ``NEAR``::

    Observation("NEAR", "nearblocks", "tx_total", 4234567890.0, ...)
    Observation("NEAR", "nearblocks", "tps", 57.0, ...)
    Observation("NEAR", "nearblocks", "avg_block_time_s", 1.0912, ...)
    Observation("NEAR", "nearblocks", "nodes_online", 248.0, ...)
    Observation("NEAR", "nearblocks", "tx_count_24h", 4924800.0, ...,
                Confidence.LOW, estimated=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from coinharvest.errors import UnknownCoin
from coinharvest.models import Coin, Confidence, SourceLimits
from coinharvest.sources.base import CoinOutcome, FetchResult
from coinharvest.sources.fields import JsonReader
from coinharvest.sources.http import HttpOptions, HttpSource
from coinharvest.sources.reading import Reading

__all__ = ["NEAR_ID", "NearBlocksSource"]

#: The only coin id NearBlocks serves.
NEAR_ID = "near"
#: The free plan: 6/min, 10 s apart, 333 requests a day (docs/upstreams.md, [16]).
FREE_PLAN = SourceLimits(
    max_concurrency=1, min_interval_s=10.0, rate_per_window=6, quota_per_day=333
)
_PATH = "/v1/stats"
_FIELDS = {
    "total_txns": "tx_total",
    "tps": "tps",
    "avg_block_time": "avg_block_time_s",
    "nodes_online": "nodes_online",
}
_SECONDS_PER_DAY = 86_400


class NearBlocksSource(HttpSource):
    """NearBlocks ``/v1/stats`` (see the module docstring)."""

    name = "nearblocks"
    default_limits = FREE_PLAN
    batch_size = 1
    default_base_url = "https://api.nearblocks.io"

    def __init__(self, options: HttpOptions | None = None) -> None:
        super().__init__(options)
        # The free plan's 30-day window applies to registered keys only (docs/upstreams.md).
        if self.api_key:
            self.default_limits = replace(FREE_PLAN, quota_per_month=10_000)

    def auth_headers(self) -> dict[str, str]:
        """``Authorization: Bearer <key>`` when a key is configured."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        """One ``/v1/stats`` request; every NEAR coin of the batch gets its figures."""
        result: dict[str, CoinOutcome] = {
            c.symbol: UnknownCoin(self.name, c.id_at(self.name))
            for c in coins
            if c.id_at(self.name) != NEAR_ID
        }
        wanted = [c for c in coins if c.symbol not in result]
        if not wanted:
            return result
        reading = _read(JsonReader(self.name), await self.http.get_json(_PATH))
        now = datetime.now(UTC)
        for coin in wanted:
            result[coin.symbol] = reading.answer(coin.symbol, now)
        return result


def _read(reader: JsonReader, document: Any) -> Reading:
    top = reader.object(document, _PATH)
    rows = reader.array(reader.field(top, "stats", _PATH), f"{_PATH}.stats")
    if not rows:
        raise reader.fail(f"{_PATH}.stats", "empty array")
    row = reader.object(rows[0], f"{_PATH}.stats[0]")
    reading = Reading("nearblocks", f"{_PATH}.stats[0]")
    for key, metric in _FIELDS.items():
        reading.number(row, key, metric)
    tps = reading.value("tps")
    if tps is not None:
        # /v1/stats has no daily count: the current rate stands in for it (an estimate).
        reading.put(
            "tx_count_24h", tps * _SECONDS_PER_DAY, confidence=Confidence.LOW, estimated=True
        )
    return reading
