"""Helpers of the source tests (not fixtures: those are in conftest.py): the coins each
source serves in the tests, and sources built through the registry."""

from __future__ import annotations

from collections.abc import Mapping

from coinharvest.config import load_settings
from coinharvest.models import Coin
from coinharvest.sources.base import Source
from coinharvest.sources.registry import build_sources

#: Per source: coins it serves in the tests (symbol -> id at that source).
COINS: dict[str, dict[str, str]] = {
    "coingecko": {"BTC": "bitcoin", "DASH": "dash"},
    "3xpl": {"BTC": "bitcoin", "DASH": "dash"},
    "blockchair": {"BTC": "bitcoin", "DASH": "dash"},
    "nearblocks": {"NEAR": "near"},
    "nano": {"XNO": "nano"},
}
SOURCES = tuple(COINS)


def coins_for(source: str, ids: Mapping[str, str] | None = None) -> list[Coin]:
    """Coins served by `source` alone."""
    return [
        Coin(symbol, symbol.title(), {source: coin_id}, ((source,),))
        for symbol, coin_id in (ids or COINS[source]).items()
    ]


def make_source(
    name: str, base_url: str, env: Mapping[str, str] | None = None, timeout_s: float = 3.0
) -> Source:
    """Source `name` pointed at `base_url`, built through the registry."""
    settings = load_settings({"HTTP_TIMEOUT_SECONDS": str(timeout_s), **(env or {})}, None)
    return build_sources(settings, names=[name], base_urls={name: base_url})[name]
