"""Blockchair, served under ``/blockchair``: ``GET /stats`` and ``GET /{chain}/stats``.

Auth: ``?key=<key>``; an invalid key gets 402 ``Invalid API token``. The HTTP status is
always mirrored in ``context.code``. A rate-limit rejection uses the configured status
(``limits.status``: 402, 429, 430 or 435) with ``{"data": null, "context": {"code": …,
"error": …}}``; the 430 message is Blockchair's verbatim text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from coinharvest.emulator.catalog import ChainSpec
from coinharvest.emulator.config import AuthConfig
from coinharvest.emulator.http import Request, Response, json_response
from coinharvest.emulator.upstreams.base import (
    RejectionContext,
    Route,
    Upstream,
    anonymous,
    block_hash,
)

__all__ = ["Blockchair"]

LIMIT_MESSAGES = {
    402: "You have exceeded the request limit for your API key. Please upgrade your plan "
    "or contact us at info@blockchair.com",
    429: "Too many requests. You have exceeded the request limit (30 requests per minute). "
    "Please apply for an API key by contacting us at info@blockchair.com",
    430: "Your IP address is temporary blacklisted due to exceeding usage of API resources. "
    "Please apply for an API key by contacting us at info@blockchair.com",
    435: "Soft limit exceeded: please make no more than 5 requests per second",
}


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _context(
    code: int, t: float, state: int | None = None, error: str | None = None
) -> dict[str, Any]:
    context: dict[str, Any] = {"code": code, "source": "A"}
    if error is not None:
        context["error"] = error
    if state is not None:
        context["state"] = state
    context["cache"] = {
        "live": False,
        "duration": 60,
        "since": _stamp(t),
        "until": _stamp(t + 60),
        "time": 1.9e-6,
    }
    context["api"] = {
        "version": "2.0.95",
        "last_major_update": "2022-11-07 02:00:00",
        "next_major_update": None,
        "documentation": "https://blockchair.com/api/docs",
        "notice": ":)",
    }
    context["time"] = 0.0123
    context["request_cost"] = 1
    return context


def _error(code: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    body = {
        "data": None,
        "context": _context(code, dt.datetime.now(dt.UTC).timestamp(), error=message),
    }
    return json_response(code, body, headers)


class Blockchair(Upstream):
    """The Blockchair emulation (every catalog chain except DigiByte)."""

    name = "blockchair"

    def route(self, request: Request) -> Route | None:
        path = request.path.rstrip("/")
        if path == "/stats":
            return Route("/stats", self._all_stats)
        parts = path.split("/")
        if len(parts) == 3 and parts[2] == "stats":
            return Route("/{chain}/stats", self._chain_stats)
        return None

    def identify(self, request: Request, auth: AuthConfig) -> str | Response:
        key = request.query.get("key")
        if key:
            if auth.valid_keys is not None and key not in auth.valid_keys:
                return _error(402, "Invalid API token. Please contact us at info@blockchair.com")
            return key
        if auth.key_required:
            return _error(402, "API key required. Please contact us at info@blockchair.com")
        return anonymous(request)

    def rejection(self, context: RejectionContext) -> Response:
        status = 429 if context.storm else context.status
        return _error(status, LIMIT_MESSAGES[status], context.retry_after_header())

    def not_found(self, request: Request) -> Response:
        return _error(404, "An unknown endpoint")

    def _chain_stats(self, request: Request, key: str) -> Response:
        name = request.path.strip("/").split("/")[0]
        spec = self.data.catalog.chains.get(name)
        if spec is None or not spec.blockchair:
            response = _error(404, "An unknown endpoint")
        else:
            t = self.data.now()
            stats = self._stats(spec, t)
            body = {"data": stats, "context": _context(200, t, stats["best_block_height"])}
            response = json_response(200, body)
        response.ids = 1
        return response

    def _all_stats(self, request: Request, key: str) -> Response:
        t = self.data.now()
        chains = self.data.catalog.blockchair_chains
        data = {spec.name: {"data": self._stats(spec, t)} for spec in chains}
        response = json_response(200, {"data": data, "context": _context(200, t)})
        response.ids = len(chains)
        return response

    def _stats(self, spec: ChainSpec, t: float) -> dict[str, Any]:
        state = self.data.chain(spec.name, t)
        quote = self.data.quote(spec.coin_id, t)
        unit = 10**spec.decimals
        btc_price = self.data.price(self.data.catalog.coins["bitcoin"], t)
        return {
            "blocks": state.height + 1,
            "transactions": state.tx_total,
            "outputs": int(state.tx_total * 2.5),
            "circulation": int(quote.circulating * unit),
            "blocks_24h": state.blocks_24h,
            "transactions_24h": state.tx_24h,
            "difficulty": round(1.3e8 * spec.block_s * quote.price, 2),
            "volume_24h": state.volume_24h_base,
            "mempool_transactions": state.mempool_tx,
            "mempool_size": state.mempool_tx * 420,
            "mempool_tps": round(state.tx_24h / 86400, 3),
            "mempool_total_fee_usd": round(state.mempool_tx * state.fee_usd, 4),
            "best_block_height": state.height,
            "best_block_hash": block_hash(spec.name, state.height),
            "best_block_time": _stamp(state.block_time),
            "blockchain_size": int(state.tx_total * 650),
            "average_transaction_fee_24h": int(state.fee_usd / quote.price * unit),
            "average_transaction_fee_usd_24h": state.fee_usd,
            "median_transaction_fee_24h": int(state.fee_usd / quote.price * unit / 10),
            "median_transaction_fee_usd_24h": state.fee_usd / 10,
            "inflation_24h": int(state.blocks_24h * 3.125 * unit / 10),
            "inflation_usd_24h": round(state.blocks_24h * 3.125 / 10 * quote.price, 2),
            "cdd_24h": round(state.tx_24h * 10.5, 1),
            "largest_transaction_24h": {
                "hash": block_hash("tx", spec.name, state.height),
                "value_usd": round(quote.market_cap * 0.0014, 2),
            },
            "nodes": 3512,
            "hashrate_24h": str(int(2.1e9 * quote.price * spec.block_s)),
            "market_price_usd": quote.price,
            "market_price_btc": quote.price / btc_price,
            "market_price_usd_change_24h_percentage": quote.change_24h_pct,
            "market_cap_usd": round(quote.market_cap),
            "market_dominance_percentage": round(quote.market_cap / 3.2e12 * 100, 2),
            "suggested_transaction_fee_per_byte_sat": 1,
        }
