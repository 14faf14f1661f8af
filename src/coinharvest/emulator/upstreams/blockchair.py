"""Blockchair, served under ``/blockchair``: ``GET /stats`` and ``GET /{chain}/stats``.

Auth: ``?key=<key>``. Since July 2025 Blockchair blocks every request without a key
(Blockchair.Support #1652: "we had to enforce blocking all API requests that didn't use
an API key"; the caller gets the 430 "IP temporary blacklisted ... Please apply for an API
key" answer on its first request), so a keyless request is answered that way unless
``auth.key_required`` is set to false. Any non-empty key is accepted unless
``auth.valid_keys`` excludes it (402 ``Invalid API token``).

The HTTP status is always mirrored in ``context.code``. A rate-limit rejection uses the
configured status (``limits.status``: 402, 429, 430 or 435) with ``{"data": null,
"context": {"code": …, "error": …}}``; a 430 has the layout and text of a recorded one
(Blockchair.Support #1147, 2023-04-20). The keyless 430 never has ``Retry-After``.

``/stats`` holds ``{"<chain>": {"data": {...}}, ...}`` plus a ``cross-chain`` entry
(token summaries, not a chain), as documented. Stats follow the documented examples
(API_DOCUMENTATION_EN.md v2.0.95) per chain family: the ``bitcoin`` layout (numbers,
``volume_24h`` in base units) for every chain but ``ethereum`` (no ``volume_24h`` or
``circulation``: ``volume_24h_approximate`` and ``circulation_approximate`` are strings in
wei, fees are wei strings, plus ``layer_2``) and ``monero`` (no ``transactions_24h``,
``volume_24h``, ``blocks_24h``, fees or outputs).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from coinharvest.emulator.catalog import ChainSpec
from coinharvest.emulator.config import AuthConfig
from coinharvest.emulator.data import REF_EPOCH
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


API_CONTEXT = {
    "version": "2.0.95-ie",
    "last_major_update": "2022-11-07 02:00:00",
    "next_major_update": None,
    "documentation": "https://blockchair.com/api/docs",
    "notice": "Please note that on November 7th, 2022 public support for the following "
    "blockchains was dropped: EOS, Bitcoin SV",
}


#: ``/stats`` ends with token summaries that are not chains (documented example, v2.0.95,
#: where their contents are elided as here).
CROSS_CHAIN: dict[str, Any] = {"tether": {}, "usd-coin": {}, "binance-usd": {}}


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _context(
    code: int,
    t: float,
    state: int | None = None,
    error: str | None = None,
    btc_price: float | None = None,
) -> dict[str, Any]:
    """``context`` laid out as recorded in 2023 (API 2.0.95-ie, bitcoin-testnet stats)."""
    context: dict[str, Any] = {"code": code, "source": "A"}
    if error is not None:
        context["error"] = error
    if state is not None:
        context["state"] = state
    if btc_price is not None:
        context["market_price_usd"] = round(btc_price)
    context["cache"] = {
        "live": False,
        "duration": 60,
        "since": _stamp(t),
        "until": _stamp(t + 60),
        "time": 1.9e-6,
    }
    context["api"] = API_CONTEXT
    context["servers"] = "API4"
    context["time"] = 0.0123
    context["render_time"] = 0.0072
    context["full_time"] = 0.0072
    context["request_cost"] = 1
    return context


def blocked_430(btc_price_usd: float, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    """The 430 "IP temporary blacklisted" answer, laid out as the recorded one."""
    t = dt.datetime.now(dt.UTC).timestamp()
    cache = {"live": True, "duration": 60, "since": _stamp(t), "until": _stamp(t + 60)}
    context: dict[str, Any] = {
        "code": 430,
        "error": LIMIT_MESSAGES[430],
        "market_price_usd": round(btc_price_usd),
        "cache": {**cache, "time": None},
        "api": API_CONTEXT,
        "servers": "API4",
        "time": None,
        "render_time": 0.0014319419860839844,
        "full_time": 0.0014319419860839844,
        "request_cost": 1,
    }
    return json_response(430, {"data": None, "context": context}, headers)


def _approximate(value: float) -> str:
    """A wei amount as Blockchair's ``*_approximate`` strings: float digits, then zeros."""
    return format(Decimal(repr(float(value))).quantize(Decimal(1)), "f")


def _error(code: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    body = {
        "data": None,
        "context": _context(code, dt.datetime.now(dt.UTC).timestamp(), error=message),
    }
    return json_response(code, body, headers)


class Blockchair(Upstream):
    """The Blockchair emulation (every catalog chain except DigiByte)."""

    name = "blockchair"
    requires_key = True

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
        if self.key_required(auth):
            return blocked_430(self._btc_price(self.data.now()))
        return anonymous(request)

    def rejection(self, context: RejectionContext) -> Response:
        status = 429 if context.storm else context.status
        if status == 430:
            return blocked_430(self._btc_price(self.data.now()), context.retry_after_header())
        return _error(status, LIMIT_MESSAGES[status], context.retry_after_header())

    def _btc_price(self, t: float) -> float:
        return self.data.price(self.data.catalog.coins["bitcoin"], t)

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
            context = _context(200, t, stats["best_block_height"], btc_price=self._btc_price(t))
            body = {"data": stats, "context": context}
            response = json_response(200, body)
        response.ids = 1
        return response

    def _all_stats(self, request: Request, key: str) -> Response:
        t = self.data.now()
        chains = self.data.catalog.blockchair_chains
        data: dict[str, Any] = {spec.name: {"data": self._stats(spec, t)} for spec in chains}
        data["cross-chain"] = CROSS_CHAIN
        context = _context(200, t, btc_price=self._btc_price(t))
        response = json_response(200, {"data": data, "context": context})
        response.ids = len(chains)
        return response

    def _stats(self, spec: ChainSpec, t: float) -> dict[str, Any]:
        if spec.family == "ethereum":
            return self._ethereum(spec, t)
        if spec.family == "monero":
            return self._monero(spec, t)
        return self._bitcoin_like(spec, t)

    def _market(self, spec: ChainSpec, t: float) -> dict[str, Any]:
        """The market fields every chain family ends with."""
        quote = self.data.quote(spec.coin_id, t)
        return {
            "market_price_usd": quote.price,
            "market_price_btc": quote.price / self._btc_price(t),
            "market_price_usd_change_24h_percentage": quote.change_24h_pct,
            "market_cap_usd": round(quote.market_cap),
            "market_dominance_percentage": round(quote.market_cap / 3.2e12 * 100, 2),
        }

    # declarative payload (size rule exempt)
    def _bitcoin_like(self, spec: ChainSpec, t: float) -> dict[str, Any]:
        """The key set of the documented ``/bitcoin/stats`` example, numbers as numbers."""
        state = self.data.chain(spec.name, t)
        quote = self.data.quote(spec.coin_id, t)
        unit = 10**spec.decimals
        difficulty = round(1.3e8 * spec.block_s * quote.price, 2)
        to_retarget = 2016 - (state.height + 1) % 2016
        market = self._market(spec, t)
        return {
            "blocks": state.height + 1,
            "transactions": state.tx_total,
            "outputs": int(state.tx_total * 2.5),
            "circulation": int(quote.circulating * unit),
            "blocks_24h": state.blocks_24h,
            "transactions_24h": state.tx_24h,
            "difficulty": difficulty,
            "volume_24h": state.volume_24h_base,
            "mempool_transactions": state.mempool_tx,
            "mempool_outputs": int(state.mempool_tx * 2.5),
            "mempool_size": state.mempool_tx * 420,
            "mempool_tps": round(state.tx_24h / 86400, 3),
            "mempool_total_fee_usd": round(state.mempool_tx * state.fee_usd, 4),
            "best_block_height": state.height,
            "best_block_hash": block_hash(spec.name, state.height),
            "best_block_time": _stamp(state.block_time),
            "blockchain_size": int(state.tx_total * 650),
            "average_transaction_fee_24h": int(state.fee_usd / quote.price * unit),
            "inflation_24h": int(state.blocks_24h * 3.125 * unit / 10),
            "median_transaction_fee_24h": int(state.fee_usd / quote.price * unit / 10),
            "cdd_24h": round(state.tx_24h * 10.5, 1),
            "largest_transaction_24h": {
                "hash": block_hash("tx", spec.name, state.height),
                "value_usd": round(quote.market_cap * 0.0014, 2),
            },
            "nodes": 3512,
            "hashrate_24h": str(int(2.1e9 * quote.price * spec.block_s)),
            "inflation_usd_24h": round(state.blocks_24h * 3.125 / 10 * quote.price, 2),
            "average_transaction_fee_usd_24h": state.fee_usd,
            "median_transaction_fee_usd_24h": state.fee_usd / 10,
            **market,
            "next_retarget_time_estimate": _stamp(state.block_time + to_retarget * spec.block_s),
            "next_difficulty_estimate": round(difficulty * 1.013),
            "countdowns": [],
            "suggested_transaction_fee_per_byte_sat": 1,
            "hodling_addresses": int(state.tx_total * 0.06),
        }

    # declarative payload (size rule exempt)
    def _ethereum(self, spec: ChainSpec, t: float) -> dict[str, Any]:
        """The key set of the documented ``/ethereum/stats`` example: wei amounts as strings."""
        state = self.data.chain(spec.name, t)
        quote = self.data.quote(spec.coin_id, t)
        wei = 10**spec.decimals
        fee_wei = state.fee_usd / quote.price * wei
        simple_fee_usd = state.fee_usd * 0.31
        inflation = round(state.blocks_24h * 0.375, 4)  # ~2,700 ETH a day since the Merge
        return {
            "blocks": state.height + 1,
            "transactions": state.tx_total,
            "blocks_24h": state.blocks_24h,
            "circulation_approximate": _approximate(quote.circulating * wei),
            "transactions_24h": state.tx_24h,
            "difficulty": round(1.3e8 * spec.block_s * quote.price),
            "volume_24h_approximate": _approximate(state.volume_24h_base),
            "mempool_transactions": state.mempool_tx,
            "mempool_median_gas_price": 1_500_000_000,
            "mempool_tps": round(state.tx_24h / 86400, 3),
            "mempool_total_value_approximate": _approximate(state.mempool_tx * 0.42 * wei),
            "best_block_height": state.height,
            "best_block_hash": block_hash(spec.name, state.height),
            "best_block_time": _stamp(state.block_time),
            "uncles": 1_268_391,
            "uncles_24h": 0,
            "blockchain_size": int(state.tx_total * 650),
            "calls": int(state.tx_total * 2.9),
            "average_transaction_fee_24h": str(int(fee_wei)),
            "median_transaction_fee_24h": str(int(fee_wei / 2)),
            "inflation_24h": inflation,
            "average_simple_transaction_fee_24h": str(int(fee_wei * 0.31)),
            "median_simple_transaction_fee_24h": str(int(fee_wei * 0.33)),
            "largest_transaction_24h": {
                "hash": "0x" + block_hash("tx", spec.name, state.height),
                "value_usd": round(quote.market_cap * 0.0014, 4),
            },
            "hashrate_24h": str(int(2.1e9 * quote.price * spec.block_s)),
            "inflation_usd_24h": inflation * quote.price,
            "average_transaction_fee_usd_24h": state.fee_usd,
            "median_transaction_fee_usd_24h": state.fee_usd / 2,
            "average_simple_transaction_fee_usd_24h": simple_fee_usd,
            "median_simple_transaction_fee_usd_24h": simple_fee_usd * 1.06,
            **self._market(spec, t),
            "layer_2": {
                "erc_20": {
                    "tokens": 1_654_321 + int((t - REF_EPOCH) / 86400 * 1200),
                    "transactions": int(state.tx_total * 0.45),
                    "tokens_24h": 1200,
                    "transactions_24h": int(state.tx_24h * 0.41),
                }
            },
            "countdowns": [],
            "suggested_transaction_fee_gwei_options": {
                "sloth": 1,
                "slow": 1,
                "normal": 2,
                "fast": 3,
                "cheetah": 5,
            },
        }

    def _monero(self, spec: ChainSpec, t: float) -> dict[str, Any]:
        """The key set of the documented ``/monero/stats`` example (no 24 h activity)."""
        state = self.data.chain(spec.name, t)
        quote = self.data.quote(spec.coin_id, t)
        return {
            "blocks": state.height + 1,
            "transactions": state.tx_total,
            "circulation": int(quote.circulating * 10**spec.decimals),
            "difficulty": round(1.3e8 * spec.block_s * quote.price),
            "hashrate_24h": round(1.3e8 * quote.price * 0.05),
            "mempool_transactions": state.mempool_tx,
            "mempool_size": state.mempool_tx * 1_900_000,
            "best_block_height": state.height,
            "best_block_hash": block_hash(spec.name, state.height),
            "best_block_time": _stamp(state.block_time),
            "suggested_transaction_fee_per_byte_sat": 13,
            **self._market(spec, t),
        }
