"""3xpl, served under ``/3xpl``: ``GET /?from=<chain|all|a,b>&library=blockchains``.

Auth: ``token=<key>`` query parameter or ``Xpl-Token`` header. Errors and rate limits use
the envelope ``{"data": null, "context": {"code": <status>, "error": "..."}}`` with the HTTP
status mirrored in ``context.code`` (3xpl's exact 429 body is unpublished; this follows the
Blockchair family it descends from). ``events_24h`` counts *events*: about 2.5-3.5 per tx.

Every field of ``data.blockchains.<chain>`` is optional at 3xpl. A *sparse* chain answers
only ``best_block``, ``best_block_hash`` and ``best_block_time``: the synthetic chains
whose index is 3 modulo 10 (``synth-00003``, ``synth-00013``, ...) always, and any chain
listed in ``shape.sparse_chains`` (e.g. ``["ecash"]``). ``mempool_events`` values may be
``null``: every secondary module's, and the main module's for the synthetic chains whose
index is 7 modulo 10.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from coinharvest.emulator.config import AuthConfig
from coinharvest.emulator.data import ChainState
from coinharvest.emulator.http import Request, Response, json_response
from coinharvest.emulator.upstreams.base import (
    RejectionContext,
    Route,
    Upstream,
    anonymous,
    block_hash,
)

__all__ = ["ThreeXpl"]


def _context(code: int, error: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"code": code, "request_cost": 1, "time": 0.0123}
    if error is not None:
        context["error"] = error
    context["timestamp"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    context["api"] = {"version": "3.0", "notice": None}
    return context


def _error(code: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    return json_response(code, {"data": None, "context": _context(code, message)}, headers)


def _block_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _chain_data(name: str, state: ChainState, fee_usd: float, sparse: bool) -> dict[str, Any]:
    best = {
        "best_block": state.height,
        "best_block_hash": block_hash(name, state.height),
        "best_block_time": _block_time(state.block_time),
    }
    if sparse:
        return best
    return {
        **best,
        "average_fee_24h": {"usd": f"{fee_usd:.4f}"},
        "events_24h": state.events_24h,
        "mempool_events": state.mempool_events,
        "progress": dict.fromkeys(state.events_24h, 100),
    }


class ThreeXpl(Upstream):
    """The 3xpl emulation (chains: the default ones plus the synthetic universe)."""

    name = "3xpl"

    def route(self, request: Request) -> Route | None:
        if request.path in ("", "/"):
            return Route("/", self._stats)
        return None

    def identify(self, request: Request, auth: AuthConfig) -> str | Response:
        token = request.query.get("token") or request.headers.get("xpl-token")
        if token:
            if auth.valid_keys is not None and token not in auth.valid_keys:
                return _error(401, "Invalid API token")
            return token
        if self.key_required(auth):
            return _error(401, "API token required")
        return anonymous(request)

    def rejection(self, context: RejectionContext) -> Response:
        return _error(429, "Too many requests", context.retry_after_header())

    def not_found(self, request: Request) -> Response:
        return _error(404, "Endpoint not found")

    def _stats(self, request: Request, key: str) -> Response:
        chains = self.data.catalog.chains
        wanted = [part for part in request.query.get("from", "all").split(",") if part]
        names = list(chains) if wanted in ([], ["all"]) else wanted
        unknown = [name for name in names if name not in chains]
        if unknown:
            response = _error(404, f"Unknown blockchain: {unknown[0]}")
            response.ids = len(names)
            return response
        t = self.data.now()
        also_sparse = set(self.shape().sparse_chains)
        blockchains = {}
        for name in names:
            state = self.data.chain(name, t)
            sparse = chains[name].threexpl_sparse or name in also_sparse
            blockchains[name] = _chain_data(name, state, state.fee_usd, sparse)
        body: dict[str, Any] = {"data": {"blockchains": blockchains}}
        body["library"] = self._library(request.query.get("library", ""), names)
        body["context"] = _context(200)
        response = json_response(200, body)
        response.ids = len(names)
        return response

    def _library(self, requested: str, names: list[str]) -> dict[str, Any]:
        if "blockchains" not in requested.split(","):
            return {}
        chains, coins = self.data.catalog.chains, self.data.catalog.coins
        library = {
            name: {
                "title": chains[name].title,
                "modules": list(chains[name].modules),
                "native_currency": coins[chains[name].coin_id].symbol,
                "launch_date": coins[chains[name].coin_id].genesis,
                "is_testnet": False,
            }
            for name in names
        }
        return {"blockchains": library}
