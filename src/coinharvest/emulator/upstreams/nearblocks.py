"""NearBlocks, served under ``/nearblocks``: ``GET /v1/stats`` and ``GET /v1/charts/latest``.

Auth: ``Authorization: Bearer <key>`` (keyless callers are limited per IP). Numbers are
strings except ``id``, ``nodes_online`` and ``tps``. The rate-limit answer is 429 with the
verbatim ``{"message": …}`` body and no ``Retry-After`` or rate-limit headers (only a
scheduled storm adds ``Retry-After``).

Every ``/v1/stats`` column is nullable at NearBlocks: ``volume`` and ``change_24`` are
``null`` for a coin CoinGecko has no volume for, and ``shape.null_fields`` names fields to
send as ``null`` (``near_price`` there also nulls the charts' ``near_price``).
"""

from __future__ import annotations

from typing import Any

from coinharvest.emulator.config import AuthConfig
from coinharvest.emulator.http import Request, Response, json_response
from coinharvest.emulator.upstreams.base import (
    RejectionContext,
    Route,
    Upstream,
    anonymous,
    iso_ms,
)

__all__ = ["NearBlocks"]

LIMIT_MESSAGE = (
    "You have exceeded your API request limit. Please try again later or upgrade your plan "
    "for higher limits at https://nearblocks.io/apis."
)
YOCTO = 10**24


def _num(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


class NearBlocks(Upstream):
    """The NearBlocks emulation (NEAR only)."""

    name = "nearblocks"

    def route(self, request: Request) -> Route | None:
        path = request.path.rstrip("/")
        if path == "/v1/stats":
            return Route("/v1/stats", self._stats)
        if path == "/v1/charts/latest":
            return Route("/v1/charts/latest", self._charts)
        return None

    def identify(self, request: Request, auth: AuthConfig) -> str | Response:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and header[7:].strip():
            key = header[7:].strip()
            if auth.valid_keys is not None and key not in auth.valid_keys:
                return json_response(401, {"message": "Invalid API key"})
            return key
        if self.key_required(auth):
            return json_response(401, {"message": "API key required"})
        return anonymous(request)

    def rejection(self, context: RejectionContext) -> Response:
        headers = context.retry_after_header() if context.storm else []
        return json_response(429, {"message": LIMIT_MESSAGE}, headers)

    def not_found(self, request: Request) -> Response:
        return json_response(404, {"message": "Not Found"})

    def _stats(self, request: Request, key: str) -> Response:
        t = self.data.now()
        near = self.data.near(t)
        quote = self.data.quote("near", t)
        btc = self.data.price(self.data.catalog.coins["bitcoin"], t)
        row: dict[str, Any] = {
            "id": 1,
            "total_supply": str(int((quote.total or quote.circulating) * YOCTO)),
            "circulating_supply": str(int(quote.circulating * YOCTO)),
            "avg_block_time": _num(near.avg_block_time),
            "gas_price": "100000000",
            "nodes_online": near.nodes_online,
            "near_price": _num(quote.price),
            "near_btc_price": f"{quote.price / btc:.10f}",
            "market_cap": _num(quote.market_cap, 2),
            "volume": None if quote.volume is None else _num(quote.volume, 2),
            "high_24h": _num(quote.high_24h),
            "high_all": "20.44",
            "low_24h": _num(quote.low_24h),
            "low_all": "0.526",
            "change_24": None if quote.change_24h_pct is None else _num(quote.change_24h_pct, 2),
            "total_txns": str(near.total_txns),
            "tps": near.tps,
        }
        for name in self.shape().null_fields:
            row[name] = None
        return json_response(200, {"stats": [row]})

    def _charts(self, request: Request, key: str) -> Response:
        near = self.data.near()
        no_price = "near_price" in self.shape().null_fields
        charts = [
            {
                "date": iso_ms(day),
                "near_price": None if no_price else _num(price),
                "txns": str(txns),
            }
            for day, txns, price in near.txns_by_day
        ]
        return json_response(200, {"charts": charts})
