"""A Nano node's RPC, served under ``/nano``: ``POST /`` with ``{"action": "<name>"}``.

Actions: ``block_count``, ``available_supply``, ``telemetry`` and ``version``. Like a node,
every number is a string, and a bad request is answered ``{"error": "…"}`` with HTTP 200.
Rate limits answer as the rpc.nano.to proxy does: 429
``{"error": 429, "message": "Too many requests. Please Wait."}``. The node takes no API
key; callers are limited per client IP.
"""

from __future__ import annotations

import json
from typing import Any

from coinharvest.emulator.config import AuthConfig
from coinharvest.emulator.http import Request, Response, json_response
from coinharvest.emulator.upstreams.base import RejectionContext, Route, Upstream, anonymous

__all__ = ["ACTIONS", "Nano"]

ACTIONS = ("block_count", "available_supply", "telemetry", "version")


def _action(request: Request) -> str | None:
    try:
        document: Any = json.loads(request.body or b"null")
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    action = document.get("action")
    return action if isinstance(action, str) else ""


class Nano(Upstream):
    """The Nano node RPC emulation."""

    name = "nano"

    def route(self, request: Request) -> Route | None:
        if request.path not in ("", "/"):
            return None
        if request.method != "POST":
            return Route("(method)", self._method_not_allowed)
        action = _action(request)
        if action is None:
            return Route("(unparsable)", self._unparsable)
        if action not in ACTIONS:
            return Route("(unknown action)", self._unknown)
        return Route(f"action:{action}", self._dispatch)

    def identify(self, request: Request, auth: AuthConfig) -> str | Response:
        return anonymous(request)

    def rejection(self, context: RejectionContext) -> Response:
        body = {"error": 429, "message": "Too many requests. Please Wait."}
        return json_response(429, body, context.retry_after_header())

    def server_error(self, status: int) -> Response:
        if status == 500:
            return json_response(500, {"error": 500, "message": "No Node available to answer."})
        return super().server_error(status)

    def _method_not_allowed(self, request: Request, key: str) -> Response:
        return json_response(405, {"error": "Method not allowed: use POST with a JSON body"})

    def _unparsable(self, request: Request, key: str) -> Response:
        return json_response(200, {"error": "Unable to parse JSON"})

    def _unknown(self, request: Request, key: str) -> Response:
        return json_response(200, {"error": "Unknown command"})

    def _dispatch(self, request: Request, key: str) -> Response:
        action = _action(request)
        nano = self.data.nano()
        if action == "block_count":
            body: dict[str, str] = {
                "count": str(nano.count),
                "unchecked": str(nano.unchecked),
                "cemented": str(nano.cemented),
            }
        elif action == "available_supply":
            body = {"available": str(nano.available_raw)}
        elif action == "version":
            body = {
                "rpc_version": "1",
                "store_version": "24",
                "protocol_version": "21",
                "node_vendor": "Nano V27.1",
                "network": "live",
            }
        else:
            body = {
                "block_count": str(nano.count),
                "cemented_count": str(nano.cemented),
                "unchecked_count": str(nano.unchecked),
                "account_count": str(nano.accounts),
                "bandwidth_cap": "10485760",
                "peer_count": str(nano.peers),
                "protocol_version": "21",
                "uptime": "1234567",
                "major_version": "27",
                "minor_version": "1",
                "patch_version": "0",
                "pre_release_version": "0",
                "maker": "0",
                "timestamp": str(int(self.data.now() * 1000)),
                "active_difficulty": "fffffff800000000",
            }
        return json_response(200, body)
