"""Time-varying, deterministic values for the catalog: prices, supplies, chain activity.

Every value is a pure function of ``(seed, coin or chain, t)``, where ``t`` is wall-clock
unix time rounded down to ``cache_s`` (the upstreams' edge cache: repeated polls within one
period see identical numbers). Values drift smoothly: a slow multi-day wave plus a small
hourly ripple, with phases derived from the seed, so two emulators with the same seed agree.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from coinharvest.emulator.catalog import Catalog, ChainSpec, CoinSpec

__all__ = ["REF_EPOCH", "ChainState", "MarketData", "NanoState", "NearState", "Quote"]

#: Heights and counters in the catalog are as of this instant (2026-11-01T00:00:00Z).
REF_EPOCH = 1_793_491_200
DAY = 86_400.0
SLOW_PERIOD = 3.7 * DAY
FAST_PERIOD = 7_919.0


@dataclass(frozen=True, slots=True)
class Quote:
    """Market data of one coin at one instant; ``None`` where CoinGecko returns null."""

    price: float
    market_cap: float
    volume: float | None
    change_24h: float | None  #: absolute USD change over 24 h
    change_24h_pct: float | None
    market_cap_change_24h: float | None
    high_24h: float
    low_24h: float
    circulating: float
    total: float | None
    max_supply: float | None
    fdv: float | None
    updated: float  #: unix seconds
    #: False: CoinGecko lists supply and market cap as 0 (the values above stay true).
    supply_known: bool = True


@dataclass(frozen=True, slots=True)
class ChainState:
    """On-chain activity of one chain at one instant."""

    height: int
    block_time: float  #: unix seconds of the best block
    blocks_24h: int
    tx_24h: int
    tx_total: int
    events_24h: dict[str, int]
    mempool_events: dict[str, int | None]
    mempool_tx: int
    volume_24h_base: int  #: on-chain output volume in base units
    fee_usd: float


@dataclass(frozen=True, slots=True)
class NearState:
    """NEAR network figures as NearBlocks reports them."""

    total_txns: int
    txns_by_day: list[tuple[float, int, float]]  #: (day start, txns, price), newest first
    tps: int
    nodes_online: int
    avg_block_time: float


@dataclass(frozen=True, slots=True)
class NanoState:
    """Nano ledger counters as a node reports them."""

    count: int
    cemented: int
    unchecked: int
    accounts: int
    peers: int
    available_raw: int


class MarketData:
    """Computes :class:`Quote` / :class:`ChainState` values for a catalog.

    :param catalog: coins and chains.
    :param seed: varies the phases of the drift.
    :param cache_s: time quantum; 0 means values change continuously.
    :param clock: wall clock (unix seconds), replaceable in tests.
    """

    __slots__ = ("_clock", "_phases", "_quotes", "_quotes_t", "cache_s", "catalog", "seed")

    def __init__(
        self,
        catalog: Catalog,
        seed: int,
        cache_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.seed = seed
        self.cache_s = cache_s
        self._clock = clock
        self._phases: dict[tuple[str, str], float] = {}
        self._quotes: dict[str, Quote] = {}  # memo for one instant (a request's quotes)
        self._quotes_t = -1.0

    def now(self) -> float:
        """Current wall time rounded down to the cache period."""
        t = self._clock()
        return t - (t % self.cache_s) if self.cache_s > 0 else t

    def _phase(self, key: str, salt: str) -> float:
        phase = self._phases.get((key, salt))
        if phase is None:
            crc = zlib.crc32(f"{self.seed}:{key}:{salt}".encode())
            phase = self._phases[(key, salt)] = crc / 2**32 * math.tau
        return phase

    def _drift(self, key: str, t: float, slow: float = 0.04, fast: float = 0.008) -> float:
        """Multiplicative factor around 1: a ~3.7-day wave plus a ~2.2-hour ripple.

        The periods are not divisors of a day, so daily samples do not repeat.
        """
        wave = slow * math.sin(math.tau * t / SLOW_PERIOD + self._phase(key, "slow"))
        ripple = fast * math.sin(math.tau * t / FAST_PERIOD + self._phase(key, "fast"))
        return math.exp(wave + ripple)

    def price(self, coin: CoinSpec, t: float) -> float:
        """USD price of ``coin`` at ``t``."""
        return coin.price * self._drift(coin.id, t)

    def quote(self, coin_id: str, t: float | None = None) -> Quote:
        """Market data of ``coin_id`` (which must be in the catalog) at ``t`` (default now)."""
        t = self.now() if t is None else t
        if t != self._quotes_t:
            self._quotes.clear()
            self._quotes_t = t
        quote = self._quotes.get(coin_id)
        if quote is None:
            quote = self._quotes[coin_id] = self._compute_quote(coin_id, t)
        return quote

    def _compute_quote(self, coin_id: str, t: float) -> Quote:
        coin = self.catalog.coins[coin_id]
        price, before = self.price(coin, t), self.price(coin, t - DAY)
        supply = coin.circulating * (1 + 0.02 * (t - REF_EPOCH) / (365 * DAY) * 0.1)
        supply = min(supply, coin.max_supply) if coin.max_supply else supply
        cap = price * supply
        volume = cap * coin.volume_ratio * self._drift(coin.id + "/vol", t, 0.2, 0.05)
        total = max(coin.total, supply) if coin.total is not None else None
        fdv_supply = coin.max_supply or total
        thin = coin.illiquid
        return Quote(
            price=price,
            market_cap=cap,
            volume=None if thin else volume,
            change_24h=None if thin else price - before,
            change_24h_pct=None if thin else (price / before - 1) * 100,
            market_cap_change_24h=None if thin else (price - before) * supply,
            high_24h=max(price, before) * 1.012,
            low_24h=min(price, before) * 0.988,
            circulating=supply,
            total=None if total is None else float(total),
            max_supply=None if coin.max_supply is None else float(coin.max_supply),
            fdv=None if thin or fdv_supply is None else price * fdv_supply,
            updated=t - 7.3,
            supply_known=coin.supply_known,
        )

    def chain(self, name: str, t: float | None = None) -> ChainState:
        """On-chain state of chain ``name`` (which must be in the catalog) at ``t``."""
        t = self.now() if t is None else t
        spec = self.catalog.chains[name]
        height = max(1, spec.height0 + int((t - REF_EPOCH) // spec.block_s))
        tx_24h = int(spec.tx_per_day * self._drift(name + "/tx", t, 0.08, 0.02))
        main_events = int(tx_24h * (2.5 + self._drift(name + "/ev", t, 0.2, 0.0) - 1))
        events = {spec.modules[0]: main_events}
        main_mempool = max(0, tx_24h // 1500) if spec.mempool_known else None
        mempool: dict[str, int | None] = {spec.modules[0]: main_mempool}
        for index, module in enumerate(spec.modules[1:], start=1):
            events[module] = max(1, main_events // (40 * index))
            mempool[module] = None
        price = self.price(self.catalog.coins[spec.coin_id], t)
        return ChainState(
            height=height,
            block_time=REF_EPOCH + (height - spec.height0) * spec.block_s,
            blocks_24h=int(DAY / spec.block_s),
            tx_24h=tx_24h,
            tx_total=self._tx_total(spec, t),
            events_24h=events,
            mempool_events=mempool,
            mempool_tx=max(0, tx_24h // 1500),
            volume_24h_base=int(tx_24h * 40 / max(price, 1e-9) * 10**spec.decimals) or 1,
            fee_usd=round(0.00005 * price**0.5 + 0.0001, 6),
        )

    def _tx_total(self, spec: ChainSpec, t: float) -> int:
        days_since_ref = (t - REF_EPOCH) / DAY
        return int(spec.tx_per_day * (2000 + days_since_ref))

    def near(self, t: float | None = None) -> NearState:
        """NEAR network figures at ``t``: cumulative and the last 15 daily counts."""
        t = self.now() if t is None else t
        today = t - (t % DAY)
        days = []
        for back in range(15):
            day = today - back * DAY
            txns = int(4_100_000 * self._drift("near/txns", day, 0.12, 0.0))
            days.append((day, txns, self.price(self.catalog.coins["near"], day)))
        total = int(4_234_567_890 + 4_100_000 * (t - REF_EPOCH) / DAY)
        return NearState(
            total_txns=total,
            txns_by_day=days,
            tps=int(47 * self._drift("near/tps", t, 0.2)),
            nodes_online=248,
            avg_block_time=round(1.09 * self._drift("near/bt", t, 0.02), 4),
        )

    def nano(self, t: float | None = None) -> NanoState:
        """Nano ledger counters at ``t`` (cumulative; grow about 90k blocks a day)."""
        t = self.now() if t is None else t
        count = int(210_123_456 + 90_000 * (t - REF_EPOCH) / DAY)
        unchecked = int(14 * self._drift("nano/unchecked", t, 0.5, 0.3))
        return NanoState(
            count=count,
            cemented=count - 55,
            unchecked=unchecked,
            accounts=int(count * 0.17),
            peers=int(190 * self._drift("nano/peers", t, 0.1)),
            available_raw=133_248_061_996_216_572_282_917_317_807_824_970_865,
        )
