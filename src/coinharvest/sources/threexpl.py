"""3xpl blockchain statistics (source name ``3xpl``).

Endpoint: ``GET {base}/?from=<chain>&library=blockchains`` for one chain, or
``GET {base}/?from=all&library=blockchains`` for every chain 3xpl indexes (reference §2.2).
The key (``THREEXPL_API_KEY``) goes in the ``token`` query parameter; it is redacted from
every message. The production host (``https://api.3xpl.com``) needs a key, so without one
the source uses the keyless sandbox (``https://sandbox-api.3xpl.com``), which 3xpl rate-
limits more tightly (numbers unpublished; docs/upstreams.md). ``THREEXPL_BASE_URL`` wins.

Per-chain vs ``from=all``, chosen per batch by which costs fewer requests: a batch of one
chain asks ``from=<chain>`` (1 request, small body); a batch of two or more asks
``from=all`` (still 1 request, where per-chain would cost one per chain). With the default
coins (BTC, ETH, DASH, DGB, XMR, XEC on 3xpl) a run costs **1** request instead of 6.
Comma lists (``from=a,b``) are not relied on: the reference marks them unverified.

A chain the answer leaves out (``from=all``) or answers 404 "Unknown blockchain" for
(``from=<chain>``) fails that coin with `UnknownCoin`. Every field of a chain's object is
optional (some answers carry only ``best_block``, ``best_block_hash`` and
``best_block_time``): a missing, null or unusable one drops that metric, with a note in the
run's record; a chain whose object is not an object fails only that chain's coins.

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
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from coinharvest.errors import ClientError, SourceError, UnknownCoin
from coinharvest.models import Coin, SourceLimits
from coinharvest.sources.base import FetchResult, per_coin
from coinharvest.sources.fields import JsonReader, shown
from coinharvest.sources.http import HttpOptions, HttpSource
from coinharvest.sources.reading import Reading, decimal_sum, to_number

__all__ = ["ThreeXplSource"]

_WHERE = "/?from="


class ThreeXplSource(HttpSource):
    """3xpl ``/?from=…&library=blockchains`` (see the module docstring)."""

    name = "3xpl"
    default_limits = SourceLimits(max_concurrency=1, min_interval_s=1.0, rate_per_window=30)
    #: ``from=all`` answers every chain in one request; 50 covers all 48 real chains.
    batch_size = 50
    default_base_url = "https://api.3xpl.com"
    #: The keyless host, used when no key is configured.
    sandbox_base_url = "https://sandbox-api.3xpl.com"

    def __init__(self, options: HttpOptions | None = None) -> None:
        options = options or HttpOptions()
        if options.base_url is None and not options.api_key:
            options = replace(options, base_url=self.sandbox_base_url)
        super().__init__(options)

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
        now = datetime.now(UTC)
        stats = _read(JsonReader(self.name), document, scope, chains, now)
        return per_coin(self.name, coins, stats, lambda c, r: r.answer(c.symbol, now))


def _read(
    reader: JsonReader, document: Any, scope: str, chains: list[str], now: datetime
) -> dict[str, Reading | SourceError]:
    """Chain name -> what the answer says of it, for the asked `chains` present in it.

    Chains nobody asked for (``from=all`` returns every one) are not inspected, so a
    quirk in one of them cannot fail this job.
    """
    top = reader.object(document, _WHERE + scope)
    data = reader.object(reader.field(top, "data", _WHERE + scope), f"{_WHERE}{scope}.data")
    where = f"{_WHERE}{scope}.data.blockchains"
    blockchains = reader.object(reader.field(data, "blockchains", f"{_WHERE}{scope}.data"), where)
    found: dict[str, Reading | SourceError] = {}
    for chain in (c for c in chains if c in blockchains):
        try:
            obj = reader.object(blockchains[chain], f"{where}.{chain}")
        except SourceError as exc:
            found[chain] = exc
            continue
        found[chain] = _chain(obj, f"{where}.{chain}", now)
    return found


def _chain(obj: dict[str, Any], where: str, now: datetime) -> Reading:
    reading = Reading("3xpl", where)
    _module_sum(reading, obj, "events_24h", "events_24h")
    reading.number(obj, "best_block", "block_height")
    _block_age(reading, obj, now)
    _module_sum(reading, obj, "mempool_events", "mempool_events")
    return reading


def _block_age(reading: Reading, obj: dict[str, Any], now: datetime) -> None:
    """``block_age_s``: now - ``best_block_time`` (ISO 8601, e.g. ``…15:57:41.000000Z``)."""
    when = obj.get("best_block_time")
    if not isinstance(when, str):
        why = "not in the answer" if when is None else "not a time"
        reading.drop("block_age_s", f"best_block_time {why}")
        return
    try:
        block_time = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        reading.drop("block_age_s", f"best_block_time is not an ISO time: {shown(when)}")
        return
    if block_time.tzinfo is None:
        block_time = block_time.replace(tzinfo=UTC)
    reading.put("block_age_s", max(0.0, (now - block_time).total_seconds()))


def _module_sum(reading: Reading, obj: dict[str, Any], key: str, metric: str) -> None:
    """Sum of a module-keyed map (``{"dash-main": 58213, "dash-dip2": null}``)."""
    modules = obj.get(key)
    if not isinstance(modules, dict):
        why = "not in the answer" if modules is None else "not a map of modules"
        reading.drop(metric, f"{key} {why}")
        return
    present = [n for n in (to_number(v) for v in modules.values()) if n is not None]
    if not present:
        reading.drop(metric, f"{key}: no module has a number")
        return
    total = decimal_sum(present)
    if total is None:
        reading.drop(metric, f"{key}: the modules' sum is out of range")
        return
    reading.put(metric, total)
