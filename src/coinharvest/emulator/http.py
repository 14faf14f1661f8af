"""Minimal ASGI request/response plumbing, kept lean for throughput.

The emulator is a raw ASGI application (no framework): it parses the scope once into a
:class:`Request` and answers with one :class:`Response` sent in a single body message.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "Receive",
    "Request",
    "Response",
    "Scope",
    "Send",
    "dumps",
    "html_response",
    "json_response",
    "read_body",
    "reset_connection",
    "send_response",
]

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - optional speed-up
    _orjson = None  # type: ignore[assignment]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = b"application/json; charset=utf-8"
HTML_TYPE = b"text/html; charset=UTF-8"


@dataclass(slots=True)
class Request:
    """One parsed request. ``path`` is relative to the upstream's prefix; headers are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    client: str
    body: bytes = b""
    raw_query: bytes = b""

    @classmethod
    def from_scope(cls, scope: Scope, path: str) -> Request:
        """Parse an ASGI HTTP scope; repeated query parameters keep the last value."""
        raw_query: bytes = scope.get("query_string", b"")
        query = dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client") or ("unknown", 0)
        return cls(scope["method"], path, query, headers, str(client[0]), raw_query=raw_query)


@dataclass(slots=True)
class Response:
    """A complete answer.

    ``ids`` is the number of coin ids the request asked for (reported in stats);
    ``violation`` names a client mistake to count (e.g. too many ids in a batch).
    """

    status: int
    body: bytes
    content_type: bytes = JSON_TYPE
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    ids: int | None = None
    violation: str | None = None


def _dumps_stdlib(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def dumps(payload: Any) -> bytes:
    """Compact JSON bytes, as the upstreams send.

    Uses orjson when it is installed (several times faster on float-heavy bodies; not a
    dependency), and the standard library for what orjson refuses (integers beyond 64 bits,
    such as wei amounts).
    """
    if _orjson is None:
        return _dumps_stdlib(payload)
    try:
        return _orjson.dumps(payload)
    except TypeError:
        return _dumps_stdlib(payload)


def json_response(
    status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    """A JSON response (see :func:`dumps`)."""
    return Response(status, dumps(payload), JSON_TYPE, headers or [])


def html_response(status: int, html: str) -> Response:
    """An HTML page, as a CDN or firewall would send instead of JSON."""
    return Response(status, html.encode(), HTML_TYPE)


async def read_body(receive: Receive) -> bytes:
    """Read the whole request body."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = bool(message.get("more_body", False))
    return b"".join(chunks)


async def send_response(send: Send, response: Response) -> None:
    """Send ``response`` as one ``http.response.start`` and one body message."""
    headers = [
        (b"content-type", response.content_type),
        (b"content-length", str(len(response.body)).encode()),
        (b"access-control-allow-origin", b"*"),
        *response.headers,
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def reset_connection(send: Send) -> bool:
    """Abort the client connection with a TCP RST, as a crashing proxy would.

    ASGI has no message for this, so it reaches the transport of uvicorn's request cycle
    (the object ``send`` is bound to). Returns ``False`` when no transport is reachable, in
    which case the caller should fall back to raising (the server then drops the connection).
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER on with a zero timeout turns close() into an RST instead of a FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True
