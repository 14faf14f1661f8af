"""3xpl blockchain statistics (source name ``3xpl``).

Endpoint: ``GET {base}/?from=<chain>&library=blockchains`` for one chain, or
``GET {base}/?from=all&library=blockchains`` for every chain 3xpl indexes (reference §2.2).
The key (``THREEXPL_API_KEY``) goes in the ``token`` query parameter; it is redacted from
every message. Without a key, point ``THREEXPL_BASE_URL`` at the keyless sandbox
(``https://sandbox-api.3xpl.com``).

Per-chain vs ``from=all``, chosen per batch by which costs fewer requests: a batch of one
chain asks ``from=<chain>`` (1 request, small body); a batch of two or more asks
``from=all`` (still 1 request, where per-chain would cost one per chain). With the default
coins (BTC, ETH, DASH, DGB, XMR, XEC on 3xpl) a run costs **1** request instead of 6.
Comma lists (``from=a,b``) are not relied on: the reference marks them unverified.

A chain the answer leaves out (``from=all``) or answers 404 "Unknown blockchain" for
(``from=<chain>``) fails that coin with `UnknownCoin`.

3xpl counts **events**, not transactions (every UTXO input and output is one), so the
metric is ``events_24h`` (the sum over the chain's modules) and never ``tx_count_24h``.

Default limits: 3xpl publishes no numbers; 1 in flight, 1000 ms apart, 30 per minute is
below the emulator's strict profile (3 / 1000 ms / 60) and ample for one request a run.

Sample output for ``DASH`` (chain ``dash``)::

    Observation("DASH", "3xpl", "events_24h", 58354.0, ...)      # dash-main + dash-dip2
    Observation("DASH", "3xpl", "block_height", 2379512.0, ...)
    Observation("DASH", "3xpl", "block_age_s", 141.2, ...)       # now - best_block_time
    Observation("DASH", "3xpl", "mempool_events", 37.0, ...)     # omitted if all null
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from coinharvest.errors import ClientError, UnknownCoin
from coinharvest.models import Coin, Observation, SourceLimits
from coinharvest.sources.base import FetchResult, observations, per_coin
from coinharvest.sources.fields import JsonReader
from coinharvest.sources.http import HttpSource

__all__ = ["ThreeXplSource"]

_WHERE = "/?from="


class ThreeXplSource(HttpSource):
    """3xpl ``/?from=…&library=blockchains`` (see the module docstring)."""

    name = "3xpl"
    default_limits = SourceLimits(max_concurrency=1, min_interval_s=1.0, rate_per_window=30)
    #: ``from=all`` answers every chain in one request; 50 covers all 48 real chains.
    batch_size = 50
    default_base_url = "https://api.3xpl.com"

    def auth_params(self) -> dict[str, str]:
        """``token=<key>`` when a key is configured."""
        return {"token": self.api_key} if self.api_key else {}

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        """One request: ``from=<chain>`` for a single chain, else ``from=all``."""
        chains = list(dict.fromkeys(coin.id_at(self.name) for coin in coins))
        scope = chains[0] if len(chains) == 1 else "all"
        try:
            document = await self.http.get_json("/", {"from": scope, "library": "blockchains"})
        except ClientError as exc:
            if scope != "all" and exc.status == 404 and "unknown blockchain" in str(exc).lower():
                return {coin.symbol: UnknownCoin(self.name, scope) for coin in coins}
            raise
        stats = _read(JsonReader(self.name), document, scope, chains)
        now = datetime.now(UTC)
        return per_coin(self.name, coins, stats, lambda c, v: _observations(c.symbol, v, now))


def _read(
    reader: JsonReader, document: Any, scope: str, chains: list[str]
) -> dict[str, dict[str, Any]]:
    """Chain name -> its parsed figures, for the asked `chains` present in the answer.

    Chains nobody asked for (``from=all`` returns every one) are not inspected, so a
    quirk in one of them cannot fail this job.
    """
    top = reader.object(document, _WHERE + scope)
    data = reader.object(reader.field(top, "data", _WHERE + scope), f"{_WHERE}{scope}.data")
    where = f"{_WHERE}{scope}.data.blockchains"
    blockchains = reader.object(reader.field(data, "blockchains", f"{_WHERE}{scope}.data"), where)
    return {
        chain: _chain(
            reader, reader.object(blockchains[chain], f"{where}.{chain}"), f"{where}.{chain}"
        )
        for chain in chains
        if chain in blockchains
    }


def _chain(reader: JsonReader, obj: dict[str, Any], where: str) -> dict[str, Any]:
    height = reader.required_number(reader.field(obj, "best_block", where), f"{where}.best_block")
    when = reader.text(reader.field(obj, "best_block_time", where), f"{where}.best_block_time")
    try:
        block_time = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        raise reader.fail(f"{where}.best_block_time", f"not an ISO time: {when!r}") from None
    return {
        "block_height": height,
        "block_time": block_time if block_time.tzinfo else block_time.replace(tzinfo=UTC),
        "events_24h": _module_sum(reader, obj, "events_24h", where),
        "mempool_events": _module_sum(reader, obj, "mempool_events", where),
    }


def _module_sum(reader: JsonReader, obj: dict[str, Any], key: str, where: str) -> float | None:
    """Sum of a module-keyed map (``{"dash-main": 58213, "dash-dip2": null}``); None if all null."""
    modules = reader.object(reader.field(obj, key, where), f"{where}.{key}")
    values = [
        reader.number(value, f"{where}.{key}.{module}", nullable=True)
        for module, value in modules.items()
    ]
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _observations(symbol: str, values: dict[str, Any], now: datetime) -> list[Observation]:
    age = max(0.0, (now - values["block_time"]).total_seconds())
    metrics: dict[str, float | None] = {
        "events_24h": values["events_24h"],
        "block_height": values["block_height"],
        "block_age_s": age,
        "mempool_events": values["mempool_events"],
    }
    return observations(symbol, "3xpl", metrics, now)
