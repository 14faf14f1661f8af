"""A Nano node's RPC, served under ``/nano``: ``POST /`` with ``{"action": "<name>"}``.

Actions: ``block_count``, ``available_supply``, ``telemetry`` and ``version``. Like a node,
every number is a string, and a bad request is answered ``{"error": "…"}`` with HTTP 200.
The node takes no API key; callers are limited per client IP.

Variants (``shape``):

* ``pre_v19``: a node older than V19 (nano-docs rpc-protocol.md): ``block_count`` has no
  ``cemented`` (``{"count": "1000", "unchecked": "10"}``), ``telemetry`` (V21+) is an
  unknown command, and ``version`` names V18.
* ``rate_limit_body``: ``json`` (default) answers a rate limit as rpc.nano.to does: 429
  ``{"error": 429, "message": "Too many requests. Please Wait."}``. ``text`` answers as
  NanoRPCProxy (the software behind ``/proxy`` endpoints such as node.somenano.com) does,
  from its source (Express ``res.status(429).send(...)``): the non-JSON body
  ``Max allowed requests of <limit> reached. Time left: <round(wait)>sec`` with Express'
  default ``text/html; charset=utf-8`` content type, ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (a JavaScript ``Date`` string) and
  never ``Retry-After``. ``<limit>`` is the configured ``limits.rate`` (NanoRPCProxy's
  default 5000 when none is set); the wait is the limiter's real one.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from coinharvest.emulator.config import AuthConfig
from coinharvest.emulator.http import Request, Response, json_response
from coinharvest.emulator.upstreams.base import RejectionContext, Route, Upstream, anonymous

__all__ = ["ACTIONS", "PROXY_DEFAULT_LIMIT", "Nano", "proxy_limit_text"]

ACTIONS = ("block_count", "available_supply", "telemetry", "version")
#: Actions a pre-V19 node lacks (telemetry arrived in V21).
NEWER_ACTIONS = ("telemetry",)
#: NanoRPCProxy's default ``rate_limiter.request_limit``, used when no rate is configured.
PROXY_DEFAULT_LIMIT = 5000
#: Express sends a string body as HTML unless told otherwise.
EXPRESS_TEXT_TYPE = b"text/html; charset=utf-8"


def proxy_limit_text(limit: int, wait_s: float) -> str:
    """NanoRPCProxy's 429 body; the seconds are rounded as JavaScript's ``Math.round``."""
    return f"Max allowed requests of {limit} reached. Time left: {math.floor(wait_s + 0.5)}sec"


def _js_date(moment: dt.datetime) -> str:
    """``String(new Date(...))`` on a server running in UTC."""
    return moment.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")


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
        if action not in ACTIONS or (self.shape().pre_v19 and action in NEWER_ACTIONS):
            return Route("(unknown action)", self._unknown)
        return Route(f"action:{action}", self._dispatch)

    def identify(self, request: Request, auth: AuthConfig) -> str | Response:
        return anonymous(request)

    def rejection(self, context: RejectionContext) -> Response:
        if self.shape().rate_limit_body == "text":
            return self._proxy_rejection(context)
        body = {"error": 429, "message": "Too many requests. Please Wait."}
        return json_response(429, body, context.retry_after_header())

    def quota_headers(
        self, limit: int, remaining: int, reset_s: float, wall: dt.datetime
    ) -> list[tuple[bytes, bytes]]:
        """A NanoRPCProxy (``rate_limit_body = "text"``) writes the reset as a JS date."""
        if self.shape().rate_limit_body != "text":
            return super().quota_headers(limit, remaining, reset_s, wall)
        reset = wall + dt.timedelta(seconds=reset_s)
        return [
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", str(max(0, remaining)).encode()),
            (b"x-ratelimit-reset", _js_date(reset).encode()),
        ]

    def _proxy_rejection(self, context: RejectionContext) -> Response:
        limit = context.limit if context.limit is not None else PROXY_DEFAULT_LIMIT
        headers = self.quota_headers(limit, context.remaining, context.wait_s, context.wall)
        body = proxy_limit_text(limit, context.wait_s).encode()
        return Response(429, body, EXPRESS_TEXT_TYPE, headers)

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
        if action == "block_count":
            body = self._block_count()
        elif action == "available_supply":
            body = {"available": str(self.data.nano().available_raw)}
        elif action == "version":
            body = self._version()
        else:
            body = self._telemetry()
        return json_response(200, body)

    def _block_count(self) -> dict[str, str]:
        nano = self.data.nano()
        body = {"count": str(nano.count), "unchecked": str(nano.unchecked)}
        if not self.shape().pre_v19:
            body["cemented"] = str(nano.cemented)
        return body

    def _version(self) -> dict[str, str]:
        if self.shape().pre_v19:
            return {
                "rpc_version": "1",
                "store_version": "14",
                "protocol_version": "16",
                "node_vendor": "Nano V18.0",
            }
        return {
            "rpc_version": "1",
            "store_version": "24",
            "protocol_version": "21",
            "node_vendor": "Nano V27.1",
            "network": "live",
        }

    def _telemetry(self) -> dict[str, str]:
        nano = self.data.nano()
        return {
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
