"""Fixtures for source tests: a real emulator, a canned loopback server, source builders."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from coinharvest.config import load_settings
from coinharvest.emulator import EmulatorConfig, RunningEmulator, run_emulator
from coinharvest.models import Coin
from coinharvest.sources.base import Source
from coinharvest.sources.registry import build_sources

sys.path.insert(0, str(Path(__file__).parent))

from loopback import Loopback, loopback

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


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    """A permissive emulator (no limits, no faults) with the default coins."""
    async with run_emulator(EmulatorConfig(seed=7)) as running:
        yield running


@pytest.fixture
async def canned() -> AsyncIterator[Loopback]:
    """A loopback server answering what the test sets."""
    async with loopback() as server:
        yield server
