"""CoinGecko API v3 (demo or pro host), served under ``/coingecko/api/v3``.

Endpoints: ``/ping``, ``/simple/price``, ``/coins/markets`` (≤ 250 ids, ``per_page`` 1…250),
``/coins/list``, ``/coins/{id}`` (404 ``{"error":"coin not found"}``) and ``/key``.

Auth (``auth.plan`` picks the host being emulated): the demo host reads
``x-cg-demo-api-key`` / ``x_cg_demo_api_key``, the pro host ``x-cg-pro-api-key`` /
``x_cg_pro_api_key``. A key for the other host, or a key not in ``auth.valid_keys``, gets
HTTP 400 with ``error_code`` 10010 (demo host) or 10011 (pro host); no key where one is
required gets 401 with ``error_code`` 10002.

Rate limit: HTTP 429 with the verbatim body and ``x-ratelimit-limit`` (the configured
rate, or 30 when only other limits are set), ``x-ratelimit-remaining`` and
``x-ratelimit-reset`` (``YYYY-MM-DD HH:MM:SS +0000``); ``Retry-After`` as configured.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from coinharvest.emulator.config import AuthConfig
from coinharvest.emulator.data import MarketData, Quote
from coinharvest.emulator.http import Request, Response, json_response
from coinharvest.emulator.upstreams import coingecko_payloads as payloads
from coinharvest.emulator.upstreams.base import RejectionContext, Route, Upstream, anonymous

__all__ = ["MAX_IDS", "MAX_PER_PAGE", "CoinGecko"]

MAX_IDS = 250
MAX_PER_PAGE = 250
RATE_LIMIT_MESSAGE = (
    "You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing "
    "to subscribe to our API plans for higher rate limits."
)
MISSING_KEY_MESSAGE = (
    "API Key Missing. Please make sure you're using the right authentication method. "
    "For more information, please refer to our documentation at https://docs.coingecko.com/"
)
WRONG_HOST = {
    "demo": (
        10010,
        "If you are using Pro API key, please change your root URL from "
        "api.coingecko.com to pro-api.coingecko.com and replace the header from "
        "x-cg-demo-api-key to x-cg-pro-api-key.",
    ),
    "pro": (
        10011,
        "If you are using Demo API key, please change your root URL from "
        "pro-api.coingecko.com to api.coingecko.com and replace the header from "
        "x-cg-pro-api-key to x-cg-demo-api-key.",
    ),
}
ORDERS: dict[str, tuple[str, bool]] = {
    "market_cap_desc": ("market_cap", True),
    "market_cap_asc": ("market_cap", False),
    "volume_desc": ("volume", True),
    "volume_asc": ("volume", False),
    "id_asc": ("id", False),
    "id_desc": ("id", True),
}


def _timestamp(wall: dt.datetime) -> str:
    return wall.strftime("%Y-%m-%dT%H:%M:%S.") + f"{wall.microsecond // 1000:03d}+00:00"


def _flag(query: dict[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    return default if value is None else value.lower() == "true"


def _split(value: str | None) -> list[str]:
    return [part.strip().lower() for part in (value or "").split(",") if part.strip()]


def _bad(message: str, violation: str | None = None) -> Response:
    response = json_response(400, {"error": message})
    response.violation = violation
    return response


class CoinGecko(Upstream):
    """The CoinGecko emulation. ``usage`` reports a key's calls this month (for ``/key``)."""

    name = "coingecko"

    def __init__(self, data: MarketData) -> None:
        super().__init__(data)
        #: calls made by a key this month; the app wires it to its limiters.
        self.usage: Callable[[str], int] = lambda key: 0
        self._orders: dict[str, list[str]] = {}

    def route(self, request: Request) -> Route | None:
        path = request.path
        if not path.startswith("/api/v3/"):
            return None
        path = path[len("/api/v3") :].rstrip("/")
        fixed: dict[str, Route] = {
            "/ping": Route("/ping", self._ping),
            "/simple/price": Route("/simple/price", self._simple_price),
            "/coins/markets": Route("/coins/markets", self._markets),
            "/coins/list": Route("/coins/list", self._list),
            "/key": Route("/key", self._key, cacheable=False),
        }
        if path in fixed:
            return fixed[path]
        if path.startswith("/coins/") and path.count("/") == 2:
            return Route("/coins/{id}", self._coin)
        return None

    def identify(self, request: Request, auth: AuthConfig) -> str | Response:
        demo = request.headers.get("x-cg-demo-api-key") or request.query.get("x_cg_demo_api_key")
        pro = request.headers.get("x-cg-pro-api-key") or request.query.get("x_cg_pro_api_key")
        mine, other = (demo, pro) if auth.plan == "demo" else (pro, demo)
        if other and not mine:
            return self._wrong_host(auth.plan)
        if mine:
            if auth.valid_keys is not None and mine not in auth.valid_keys:
                return self._wrong_host(auth.plan)
            return mine
        if self.key_required(auth):
            wall = dt.datetime.now(dt.UTC)
            status = {
                "timestamp": _timestamp(wall),
                "error_code": 10002,
                "error_message": MISSING_KEY_MESSAGE,
            }
            return json_response(401, {"status": status})
        return anonymous(request)

    def _wrong_host(self, plan: str) -> Response:
        code, message = WRONG_HOST[plan]
        body = {
            "timestamp": _timestamp(dt.datetime.now(dt.UTC)),
            "error_code": code,
            "status": {"error_message": message},
        }
        return json_response(400, body)

    def quota_headers(
        self, limit: int, remaining: int, reset_s: float, wall: dt.datetime
    ) -> list[tuple[bytes, bytes]]:
        """The reset as CoinGecko's date, ``2025-07-25 14:54:00 +0000`` (rounded up)."""
        reset_at = wall + dt.timedelta(seconds=math.ceil(max(reset_s, 0.0)))
        return [
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", reset_at.strftime("%Y-%m-%d %H:%M:%S +0000").encode()),
        ]

    def rejection(self, context: RejectionContext) -> Response:
        headers = [
            *self.quota_headers(
                context.limit or 30, context.remaining, context.wait_s, context.wall
            ),
            *context.retry_after_header(),
        ]
        body = {"status": {"error_code": 429, "error_message": RATE_LIMIT_MESSAGE}}
        return json_response(429, body, headers)

    def not_found(self, request: Request) -> Response:
        return json_response(
            404, {"error": "Incorrect path. Please check https://docs.coingecko.com/"}
        )

    def _ping(self, request: Request, key: str) -> Response:
        return json_response(200, {"gecko_says": "(V3) To the Moon!"})

    def _known(self, ids: list[str], symbols: list[str]) -> list[str]:
        coins = self.data.catalog.coins
        if ids:
            return list(dict.fromkeys(cid for cid in ids if cid in coins))
        wanted = set(symbols)
        return [cid for cid in self.data.catalog.ranked if coins[cid].symbol in wanted]

    def _simple_price(self, request: Request, key: str) -> Response:
        query = request.query
        vs_names = _split(query.get("vs_currencies"))
        if not vs_names:
            return _bad("Missing parameter vs_currencies")
        ids, symbols = _split(query.get("ids")), _split(query.get("symbols"))
        t = self.data.now()
        vs_list = [(vs, rate) for vs in vs_names if (rate := payloads.vs_rate(self.data, vs, t))]
        flags = {
            name
            for name in (
                "include_market_cap",
                "include_24hr_vol",
                "include_24hr_change",
                "include_last_updated_at",
            )
            if _flag(query, name, False)
        }
        result = {
            cid: payloads.simple_price_entry(self.data.quote(cid, t), vs_list, flags)
            for cid in self._known(ids, symbols)
        }
        response = json_response(200, result)
        response.ids = len(ids) or len(symbols)
        return response

    def _markets(self, request: Request, key: str) -> Response:
        query = request.query
        vs = query.get("vs_currency", "").lower()
        if not vs:
            return _bad("Missing parameter vs_currency")
        t = self.data.now()
        rate = payloads.vs_rate(self.data, vs, t)
        if rate is None:
            return _bad("invalid vs_currency")
        ids, symbols = _split(query.get("ids")), _split(query.get("symbols"))
        if len(ids) > MAX_IDS:
            response = _bad(f"ids: at most {MAX_IDS} ids per request", "too_many_ids")
        else:
            response = self._paging_error(query) or json_response(
                200, self._market_page(query, ids, symbols, vs, rate, t)
            )
        response.ids = len(ids) or len(symbols) or None
        return response

    def _paging_error(self, query: dict[str, str]) -> Response | None:
        per_page, page = query.get("per_page", "100"), query.get("page", "1")
        if not per_page.isdigit() or not 1 <= int(per_page) <= MAX_PER_PAGE:
            return _bad(f"per_page must be between 1 and {MAX_PER_PAGE}", "per_page")
        if not page.isdigit() or int(page) < 1:
            return _bad("page must be a positive integer")
        if query.get("order", "market_cap_desc") not in ORDERS:
            return _bad("invalid order")
        return None

    def _market_page(
        self,
        query: dict[str, str],
        ids: list[str],
        symbols: list[str],
        vs: str,
        rate: float,
        t: float,
    ) -> list[dict[str, Any]]:
        per_page, page = int(query.get("per_page", "100")), int(query.get("page", "1"))
        order = query.get("order", "market_cap_desc")
        if ids or symbols:
            selected = self._live_order(self._known(ids, symbols), order, t)
        else:
            selected = self._static_order(order)
        selected = selected[(page - 1) * per_page : page * per_page]
        windows = _split(query.get("price_change_percentage"))
        sparkline = _flag(query, "sparkline", False)
        coins = self.data.catalog.coins
        return [
            payloads.market_item(
                self.data,
                coins[cid],
                self.data.quote(cid, t),
                vs,
                rate,
                payloads.market_extras(self.data, coins[cid], t, windows, sparkline),
            )
            for cid in selected
        ]

    def _live_order(self, selected: list[str], order: str, t: float) -> list[str]:
        field, reverse = ORDERS[order]
        quotes = {cid: self.data.quote(cid, t) for cid in selected}
        return sorted(
            selected, key=lambda cid: _order_key(cid, quotes[cid], field), reverse=reverse
        )

    def _static_order(self, order: str) -> list[str]:
        """The whole catalog in ``order``, by base values (cached: it never changes)."""
        if order not in self._orders:
            field, reverse = ORDERS[order]
            coins = self.data.catalog.coins
            keys: dict[str, Callable[[str], Any]] = {
                "id": lambda cid: cid,
                "volume": lambda cid: coins[cid].market_cap * coins[cid].volume_ratio,
                "market_cap": lambda cid: coins[cid].listed_market_cap,
            }
            self._orders[order] = sorted(coins, key=keys[field], reverse=reverse)
        return self._orders[order]

    def _list(self, request: Request, key: str) -> Response:
        platforms = _flag(request.query, "include_platform", False)
        listing: list[dict[str, Any]] = []
        for coin in self.data.catalog.coins.values():
            entry: dict[str, Any] = {"id": coin.id, "symbol": coin.symbol, "name": coin.name}
            if platforms:
                entry["platforms"] = {}
            listing.append(entry)
        return json_response(200, listing)

    def _coin(self, request: Request, key: str) -> Response:
        coin_id = request.path.rstrip("/").rsplit("/", 1)[-1].lower()
        coin = self.data.catalog.coins.get(coin_id)
        if coin is None:
            response = json_response(404, {"error": "coin not found"})
        else:
            options = {
                name: _flag(request.query, name, default)
                for name, default in (
                    ("localization", True),
                    ("tickers", True),
                    ("market_data", True),
                    ("sparkline", False),
                )
            }
            response = json_response(
                200, payloads.coin_detail(self.data, coin, self.data.now(), options)
            )
        response.ids = 1
        return response

    def _key(self, request: Request, key: str) -> Response:
        used = self.usage(key)
        body = {
            "plan": "Emulator",
            "rate_limit_request_per_minute": 30,
            "monthly_call_credit": 10000,
            "current_total_monthly_calls": used,
            "current_remaining_monthly_calls": max(0, 10000 - used),
        }
        return json_response(200, body)


def _order_key(cid: str, quote: Quote, field: str) -> Any:
    if field == "id":
        return cid
    if field == "volume":
        return quote.volume or 0.0
    return payloads.listed_cap(quote)
