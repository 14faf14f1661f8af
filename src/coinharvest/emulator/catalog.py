"""The coins and chains the emulator knows: the 11 default coins plus a synthetic universe.

Base values are realistic magnitudes as of late 2025; :mod:`coinharvest.emulator.data`
makes them drift with time. Synthetic coins are ``synth-00001`` ... ``synth-NNNNN`` on
CoinGecko, and the same names are 3xpl / Blockchair chains. They come from one RNG seeded
with the emulator's seed, drawing a fixed number of values per coin, so coin ``i`` is the
same whatever the size of the universe.

Gaps the real APIs have, placed deterministically (by position, whatever the seed):

* CoinGecko does not know the circulating supply of ``chia`` and of every synthetic coin
  whose index is 11 modulo 20 (``synth-00011``, ``synth-00031``, ...): ``/coins/markets``
  answers ``market_cap: 0``, ``circulating_supply: 0`` and ``market_cap_rank: null``
  next to a real price and volume (``CoinSpec.supply_known``).
* 3xpl answers only ``best_block``, ``best_block_hash`` and ``best_block_time`` for the
  synthetic chains whose index is 3 modulo 10 (``ChainSpec.threexpl_sparse``), and
  ``null`` as the main module's ``mempool_events`` for those whose index is 7 modulo 10
  (``ChainSpec.mempool_known``).
* Blockchair's stats differ per chain family (``ChainSpec.family``): ``ethereum`` and
  ``monero`` have their own key sets; every other chain is laid out like ``bitcoin``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

__all__ = ["Catalog", "ChainSpec", "CoinSpec", "build_catalog", "synthetic_id"]


@dataclass(frozen=True, slots=True)
class CoinSpec:
    """Static facts and base market values of one coin (CoinGecko view)."""

    id: str
    symbol: str
    name: str
    price: float
    circulating: float
    total: float | None
    max_supply: float | None
    volume_ratio: float  #: 24 h volume as a fraction of market cap
    ath: float
    genesis: str | None
    hashing: str | None
    block_minutes: float | None
    illiquid: bool = False  #: price change, volume and FDV are null (thin markets)
    supply_known: bool = True  #: False: CoinGecko reports 0 supply and cap, no rank

    @property
    def market_cap(self) -> float:
        """Base market cap in USD."""
        return self.price * self.circulating

    @property
    def listed_market_cap(self) -> float:
        """Base market cap as CoinGecko lists it: 0 when it does not know the supply."""
        return self.market_cap if self.supply_known else 0.0


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """Static facts of one chain as 3xpl and Blockchair index it."""

    name: str
    title: str
    coin_id: str  #: CoinGecko id of the native coin (for prices)
    modules: tuple[str, ...]
    block_s: float
    height0: int  #: height at the reference epoch
    tx_per_day: float
    decimals: int = 8
    blockchair: bool = True
    family: Literal["bitcoin", "ethereum", "monero"] = "bitcoin"  #: Blockchair stats layout
    threexpl_sparse: bool = False  #: 3xpl answers only best_block, its hash and time
    mempool_known: bool = True  #: False: 3xpl's main-module mempool_events is null


_D = CoinSpec
# fmt: off
DEFAULT_COINS: tuple[CoinSpec, ...] = (
    _D("bitcoin", "btc", "Bitcoin", 91234.5, 19_954_000, 19_954_000, 21e6, 0.02, 126080.0,
       "2009-01-03", "SHA-256", 10),
    _D("ethereum", "eth", "Ethereum", 3012.4, 120_700_000, 120_700_000, None, 0.05, 4946.05,
       "2015-07-30", None, None),
    _D("dash", "dash", "Dash", 23.87, 12_417_862.3, 12_417_862.3, 18_900_000, 0.2, 1493.59,
       "2014-01-19", "X11", 2),
    _D("digibyte", "dgb", "DigiByte", 0.00712, 17_835_212_345, 21e9, 21e9, 0.032, 0.1758,
       "2014-01-10", "Multiple", 0.25),
    _D("monero", "xmr", "Monero", 402.1, 18_446_744, 18_446_744, None, 0.015, 517.62,
       "2014-04-18", "RandomX", 2),
    _D("ravencoin", "rvn", "Ravencoin", 0.0095, 15_600_000_000, 15_600_000_000, 21e9, 0.08,
       0.285, "2018-01-03", "KAWPOW", 1),
    _D("chia", "xch", "Chia", 8.52, 13_500_000, 34_500_000, None, 0.25, 1645.0,
       None, "Proof of Space and Time", None, supply_known=False),
    _D("ecash", "xec", "eCash", 0.0000125, 19_900_000_000_000, 19_900_000_000_000, 21e12, 0.03,
       0.0003809, "2021-07-01", "SHA-256", 10),
    _D("nano", "xno", "Nano", 0.752, 133_248_297, 133_248_297, 133_248_297, 0.015, 33.69,
       "2015-10-01", None, None),
    _D("near", "near", "NEAR Protocol", 2.85, 1_232_000_000, 1_270_000_000, None, 0.07, 20.44,
       "2020-04-22", None, None),
    _D("internet-computer", "icp", "Internet Computer", 4.51, 540_000_000, 545_000_000, None,
       0.04, 700.65, "2021-05-10", None, None),
)
# fmt: on

_C = ChainSpec
# fmt: off
DEFAULT_CHAINS: tuple[ChainSpec, ...] = (
    _C("bitcoin", "Bitcoin", "bitcoin", ("bitcoin-main", "bitcoin-omni"), 600, 925_000, 450_000),
    _C("ethereum", "Ethereum", "ethereum", ("ethereum-main", "ethereum-trace", "ethereum-erc-20"),
       12, 23_900_000, 1_400_000, 18, family="ethereum"),
    _C("dash", "Dash", "dash", ("dash-main", "dash-dip2"), 150, 2_379_512, 17_423),
    _C("digibyte", "DigiByte", "digibyte", ("digibyte-main",), 15, 22_050_000, 21_000,
       blockchair=False),
    _C("monero", "Monero", "monero", ("monero-main",), 120, 3_541_000, 26_000, 12,
       family="monero"),
    _C("ecash", "eCash", "ecash", ("ecash-main",), 600, 925_300, 8_400, 2),
)
# fmt: on


def synthetic_id(index: int) -> str:
    """CoinGecko id (and chain name) of synthetic coin ``index`` (1-based)."""
    return f"synth-{index:05d}"


def _synthetic(rng: random.Random, index: int) -> tuple[CoinSpec, ChainSpec]:
    draws = [rng.random() for _ in range(8)]  # fixed count: coin i never depends on N
    price = 10 ** (-5 + 8 * draws[0])
    # log10(market cap) = 3 + an exponential tail: most coins are tiny, as on CoinGecko,
    # where ~1% of 17k coins are above $300M.
    log_cap = 3 + min(7.6, -1.1 * math.log(1.0 - draws[1]))
    circulating = 10**log_cap / price
    capped = draws[2] < 0.6
    coin_id = synthetic_id(index)
    coin = CoinSpec(
        id=coin_id,
        symbol=f"syn{index}",
        name=f"Synth {index:05d}",
        price=price,
        circulating=circulating,
        total=circulating * (1 + draws[3]) if capped else circulating,
        max_supply=circulating * (1 + 2 * draws[3]) if capped else None,
        volume_ratio=0.005 + 0.2 * draws[4],
        ath=price * (1.5 + 20 * draws[5]),
        genesis=None,
        hashing=None,
        block_minutes=None,
        illiquid=draws[6] < 0.02,
        supply_known=index % 20 != 11,
    )
    block_s = (15.0, 60.0, 150.0, 600.0)[int(draws[7] * 4)]
    chain = ChainSpec(
        name=coin_id,
        title=coin.name,
        coin_id=coin_id,
        modules=(f"{coin_id}-main",),
        block_s=block_s,
        height0=int(10 ** (4 + 3 * draws[5])),
        tx_per_day=10 ** (3 + 3 * draws[4]),
        threexpl_sparse=index % 10 == 3,
        mempool_known=index % 10 != 7,
    )
    return coin, chain


@dataclass(frozen=True, slots=True)
class Catalog:
    """All coins and chains, with lookup maps and the market-cap ranking."""

    coins: dict[str, CoinSpec]
    chains: dict[str, ChainSpec]
    ranked: tuple[str, ...]  #: coin ids by listed base market cap, largest first
    rank: dict[str, int]  #: CoinGecko's market_cap_rank; absent for coins listed at cap 0

    @property
    def blockchair_chains(self) -> list[ChainSpec]:
        """The chains Blockchair serves (all but DigiByte)."""
        return [chain for chain in self.chains.values() if chain.blockchair]


def build_catalog(seed: int, universe: int) -> Catalog:
    """Build the default coins plus ``universe`` synthetic ones from ``seed``."""
    rng = random.Random(seed)
    coins = {coin.id: coin for coin in DEFAULT_COINS}
    chains = {chain.name: chain for chain in DEFAULT_CHAINS}
    for index in range(1, universe + 1):
        coin, chain = _synthetic(rng, index)
        coins[coin.id] = coin
        chains[chain.name] = chain
    ranked = tuple(sorted(coins, key=lambda cid: -coins[cid].listed_market_cap))
    listed = [cid for cid in ranked if coins[cid].supply_known]
    rank = {cid: position for position, cid in enumerate(listed, start=1)}
    return Catalog(coins=coins, chains=chains, ranked=ranked, rank=rank)
