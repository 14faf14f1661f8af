"""JSON payloads of CoinGecko's market endpoints, built from :class:`~..data.Quote` values.

Field names and types follow the samples of ``/simple/price``, ``/coins/markets`` (the SDK
model ``MarketGetResponseItem``) and ``/coins/{id}``; integers where CoinGecko sends
integers (``market_cap``, ``total_volume``), ``null`` where it does. For a coin whose
supply CoinGecko does not know (``Quote.supply_known`` false: ``chia`` and some synthetic
coins) the answer is laid out as a recorded one (BitCanna, 2021-09-13): ``market_cap``,
``circulating_supply`` and both ``market_cap_change_*`` are ``0.0``, ``market_cap_rank``
and ``fully_diluted_valuation`` are ``null``, next to a real price, volume and total supply.
"""

from __future__ import annotations

import zlib
from typing import Any

from coinharvest.emulator.catalog import CoinSpec
from coinharvest.emulator.data import DAY, MarketData, Quote
from coinharvest.emulator.upstreams.base import iso_ms

__all__ = [
    "VS_CURRENCIES",
    "coin_detail",
    "listed_cap",
    "market_extras",
    "market_item",
    "simple_price_entry",
    "vs_rate",
]

#: Quote currencies served, with fixed USD conversion (crypto ones use live prices).
VS_CURRENCIES = ("usd", "eur", "gbp", "btc", "eth")
_FIAT_PER_USD = {"usd": 1.0, "eur": 0.862, "gbp": 0.757}
WINDOWS = {
    "1h": 3600.0,
    "24h": DAY,
    "7d": 7 * DAY,
    "14d": 14 * DAY,
    "30d": 30 * DAY,
    "200d": 200 * DAY,
    "1y": 365 * DAY,
}


def vs_rate(data: MarketData, vs: str, t: float) -> float | None:
    """Units of ``vs`` per USD at ``t``; ``None`` for an unsupported currency."""
    if vs in _FIAT_PER_USD:
        return _FIAT_PER_USD[vs]
    if vs == "btc":
        return 1.0 / data.price(data.catalog.coins["bitcoin"], t)
    if vs == "eth":
        return 1.0 / data.price(data.catalog.coins["ethereum"], t)
    return None


def _scaled(value: float | None, rate: float) -> float | None:
    return None if value is None else value * rate


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


def listed_cap(quote: Quote) -> float:
    """Market cap in USD as CoinGecko lists it: 0 when it does not know the supply."""
    return quote.market_cap if quote.supply_known else 0.0


def _listed_supply(quote: Quote) -> float:
    return quote.circulating if quote.supply_known else 0.0


def simple_price_entry(
    quote: Quote, vs_list: list[tuple[str, float]], flags: set[str]
) -> dict[str, Any]:
    """One coin's entry of ``/simple/price``; ``flags`` are the ``include_*`` options set."""
    entry: dict[str, Any] = {}
    for vs, rate in vs_list:
        entry[vs] = quote.price * rate
        if "include_market_cap" in flags:
            entry[f"{vs}_market_cap"] = listed_cap(quote) * rate
        if "include_24hr_vol" in flags:
            entry[f"{vs}_24h_vol"] = _scaled(quote.volume, rate)
        if "include_24hr_change" in flags:
            entry[f"{vs}_24h_change"] = quote.change_24h_pct
    if "include_last_updated_at" in flags:
        entry["last_updated_at"] = int(quote.updated)
    return entry


def _image(coin: CoinSpec, size: str) -> str:
    number = zlib.crc32(coin.id.encode()) % 40000
    return (
        f"https://coin-images.coingecko.com/coins/images/{number}/{size}/{coin.id}.png?1696501400"
    )


def _roi(coin: CoinSpec, quote: Quote) -> dict[str, Any] | None:
    if coin.id != "ethereum":
        return None
    times = quote.price / 0.311 - 1  # ETH's ICO price in USD
    return {"times": times, "currency": "btc", "percentage": times * 100}


def market_item(
    data: MarketData, coin: CoinSpec, quote: Quote, vs: str, rate: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """One element of the ``/coins/markets`` array; ``extra`` holds requested extras."""
    atl = coin.ath / 2500
    rank = data.catalog.rank.get(coin.id)
    known = quote.supply_known
    item: dict[str, Any] = {
        "id": coin.id,
        "symbol": coin.symbol,
        "name": coin.name,
        "image": _image(coin, "large"),
        "current_price": quote.price * rate,
        "market_cap": _whole(quote.market_cap * rate) if known else 0.0,
        "market_cap_rank": rank,
        "fully_diluted_valuation": _whole(_scaled(quote.fdv, rate)) if known else None,
        "total_volume": _whole(_scaled(quote.volume, rate)),
        "high_24h": quote.high_24h * rate,
        "low_24h": quote.low_24h * rate,
        "price_change_24h": _scaled(quote.change_24h, rate),
        "price_change_percentage_24h": quote.change_24h_pct,
        "market_cap_change_24h": _scaled(quote.market_cap_change_24h, rate) if known else 0.0,
        "market_cap_change_percentage_24h": quote.change_24h_pct if known else 0.0,
        "circulating_supply": _listed_supply(quote),
        "total_supply": quote.total,
        "max_supply": quote.max_supply,
        "ath": coin.ath * rate,
        "ath_change_percentage": (quote.price / coin.ath - 1) * 100,
        "ath_date": "2024-12-17T15:02:41.429Z",
        "atl": atl * rate,
        "atl_change_percentage": (quote.price / atl - 1) * 100,
        "atl_date": "2015-10-20T00:00:00.000Z",
        "roi": _roi(coin, quote),
        "last_updated": iso_ms(quote.updated),
        "market_cap_rank_with_rehypothecated": rank,
    }
    item.update(extra)
    return item


def market_extras(
    data: MarketData, coin: CoinSpec, t: float, windows: list[str], sparkline: bool
) -> dict[str, Any]:
    """``price_change_percentage_<w>_in_currency`` and ``sparkline_in_7d`` when requested."""
    extra: dict[str, Any] = {}
    now_price = data.price(coin, t)
    for window in windows:
        if window in WINDOWS:
            then = data.price(coin, t - WINDOWS[window])
            key = f"price_change_percentage_{window}_in_currency"
            extra[key] = None if coin.illiquid else (now_price / then - 1) * 100
    if sparkline:
        prices = [data.price(coin, t - hour * 3600.0) for hour in range(167, -1, -1)]
        extra["sparkline_in_7d"] = {"price": prices}
    return extra


def _by_vs(
    data: MarketData, value: float | None, t: float, whole_fiat: bool = False
) -> dict[str, float | int | None]:
    """A per-currency map; amounts (caps, volumes) are whole numbers in fiat, as CoinGecko sends."""
    result: dict[str, float | int | None] = {}
    for vs in VS_CURRENCIES:
        amount = _scaled(value, vs_rate(data, vs, t) or 0.0)
        result[vs] = _whole(amount) if whole_fiat and vs in _FIAT_PER_USD else amount
    return result


def coin_detail(
    data: MarketData, coin: CoinSpec, t: float, options: dict[str, bool]
) -> dict[str, Any]:
    """The ``/coins/{id}`` document; ``options`` are the boolean query parameters."""
    quote = data.quote(coin.id, t)
    doc: dict[str, Any] = {
        "id": coin.id,
        "symbol": coin.symbol,
        "name": coin.name,
        "web_slug": coin.id,
        "asset_platform_id": None,
        "platforms": {"": ""},
        "detail_platforms": {"": {}},
        "block_time_in_minutes": coin.block_minutes or 0,
        "hashing_algorithm": coin.hashing,
        "categories": ["Cryptocurrency"],
        "preview_listing": False,
        "public_notice": None,
    }
    if options["localization"]:
        doc["localization"] = {"en": coin.name, "de": coin.name}
    doc["description"] = {"en": f"{coin.name} is a cryptocurrency."}
    doc["image"] = {size: _image(coin, size) for size in ("thumb", "small", "large")}
    doc["genesis_date"] = coin.genesis
    doc["market_cap_rank"] = data.catalog.rank.get(coin.id)
    if options["market_data"]:
        doc["market_data"] = _detail_market_data(data, coin, quote, t, options["sparkline"])
    if options["tickers"]:
        doc["tickers"] = _tickers(coin, quote)
    doc["last_updated"] = iso_ms(quote.updated)
    return doc


def _detail_market_data(
    data: MarketData, coin: CoinSpec, quote: Quote, t: float, sparkline: bool
) -> dict[str, Any]:
    market: dict[str, Any] = {
        "current_price": _by_vs(data, quote.price, t),
        "market_cap": _by_vs(data, listed_cap(quote), t, whole_fiat=True),
        "fully_diluted_valuation": _by_vs(
            data, quote.fdv if quote.supply_known else None, t, whole_fiat=True
        ),
        "total_volume": _by_vs(data, quote.volume, t, whole_fiat=True),
        "high_24h": _by_vs(data, quote.high_24h, t),
        "low_24h": _by_vs(data, quote.low_24h, t),
        "price_change_24h": quote.change_24h,
        "price_change_percentage_24h": quote.change_24h_pct,
        "market_cap_change_24h": quote.market_cap_change_24h if quote.supply_known else 0.0,
        "market_cap_change_percentage_24h": quote.change_24h_pct if quote.supply_known else 0.0,
        "circulating_supply": _listed_supply(quote),
        "total_supply": quote.total,
        "max_supply": quote.max_supply,
        "last_updated": iso_ms(quote.updated),
    }
    if sparkline:
        market["sparkline_7d"] = market_extras(data, coin, t, [], True)["sparkline_in_7d"]
    return market


def _tickers(coin: CoinSpec, quote: Quote) -> list[dict[str, Any]]:
    volume = quote.volume or 0.0
    return [
        {
            "base": coin.symbol.upper(),
            "target": "USDT",
            "market": {"name": market, "identifier": market.lower()},
            "last": quote.price,
            "volume": volume * share / quote.price,
            "converted_last": {"usd": quote.price},
            "trust_score": "green",
        }
        for market, share in (("Binance", 0.3), ("Coinbase Exchange", 0.15))
    ]
