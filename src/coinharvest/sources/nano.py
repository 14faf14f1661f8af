"""A Nano node's RPC: ledger block counts.

Endpoint: ``POST {NANO_BASE_URL}`` (alias ``NANO_RPC_URL``) with
``{"action": "block_count"}`` →
``{"count": "205123456", "unchecked": "14", "cemented": "205123401"}`` (numbers as strings,
reference §4.2). A node answers a bad request with HTTP 200 and ``{"error": "…"}``: that is a
`BadResponse` quoting the node's message. Nodes and public proxies take no key; none is
sent. The node serves one ledger: a coin whose id here is not ``nano`` fails with
`UnknownCoin`.

Default URL: ``https://node.somenano.com/proxy`` (a public proxy that allows
``block_count``; ``rpc.nano.to`` does not list it). Default limits: 1 in flight, 1000 ms
apart, 60 per minute (rpc.nano.to's published 60/min, the tightest public figure).

``count`` and ``cemented`` are cumulative totals since genesis, so no ``tx_count_24h`` is
derived here: a daily rate needs the difference between two runs. Every value is a string;
nodes before V19 send no ``cemented``: a missing or unusable field drops that metric only
(noted in the run's record), the others are kept.

Sample output for ``XNO``::

    Observation("XNO", "nano", "block_count", 205123456.0, ...)
    Observation("XNO", "nano", "cemented_count", 205123401.0, ...)
    Observation("XNO", "nano", "unchecked_count", 14.0, ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from coinharvest.errors import BadResponse, UnknownCoin
from coinharvest.models import Coin, SourceLimits
from coinharvest.sources.base import CoinOutcome, FetchResult
from coinharvest.sources.fields import JsonReader
from coinharvest.sources.http import HttpSource
from coinharvest.sources.reading import Reading

__all__ = ["NANO_ID", "NanoSource"]

#: The only coin id a Nano node serves.
NANO_ID = "nano"
_WHERE = "block_count"
_FIELDS = {"count": "block_count", "cemented": "cemented_count", "unchecked": "unchecked_count"}


class NanoSource(HttpSource):
    """Nano node RPC ``block_count`` (see the module docstring)."""

    name = "nano"
    default_limits = SourceLimits(max_concurrency=1, min_interval_s=1.0, rate_per_window=60)
    batch_size = 1
    default_base_url = "https://node.somenano.com/proxy"

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        """One ``block_count`` call; every Nano coin of the batch gets the counts."""
        result: dict[str, CoinOutcome] = {
            c.symbol: UnknownCoin(self.name, c.id_at(self.name))
            for c in coins
            if c.id_at(self.name) != NANO_ID
        }
        wanted = [c for c in coins if c.symbol not in result]
        if not wanted:
            return result
        document = await self.http.post_json("", {"action": "block_count"})
        reading = _read(JsonReader(self.name), document)
        now = datetime.now(UTC)
        for coin in wanted:
            result[coin.symbol] = reading.answer(coin.symbol, now)
        return result


def _read(reader: JsonReader, document: Any) -> Reading:
    top = reader.object(document, _WHERE)
    error = top.get("error")
    if error is not None:
        raise BadResponse("nano", f"{_WHERE}: node answered error: {_cut(str(error))}")
    reading = Reading("nano", _WHERE)
    for key, metric in _FIELDS.items():
        reading.number(top, key, metric)
    return reading


def _cut(text: str, limit: int = 120) -> str:
    """`text` cut to `limit` characters with the ``...`` mark (which redaction knows: a
    secret cut short before it is still removed)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
