"""The emulated upstreams, by name (an explicit registry, no import-time registration)."""

from __future__ import annotations

from coinharvest.emulator.config import UpstreamName
from coinharvest.emulator.upstreams.base import Upstream
from coinharvest.emulator.upstreams.blockchair import Blockchair
from coinharvest.emulator.upstreams.coingecko import CoinGecko
from coinharvest.emulator.upstreams.nano import Nano
from coinharvest.emulator.upstreams.nearblocks import NearBlocks
from coinharvest.emulator.upstreams.threexpl import ThreeXpl

__all__ = ["UPSTREAM_CLASSES", "Upstream"]

#: Upstream name (also its path prefix, ``/<name>``) -> implementation.
UPSTREAM_CLASSES: dict[UpstreamName, type[Upstream]] = {
    "coingecko": CoinGecko,
    "3xpl": ThreeXpl,
    "blockchair": Blockchair,
    "nearblocks": NearBlocks,
    "nano": Nano,
}
