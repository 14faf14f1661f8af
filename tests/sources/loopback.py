"""A tiny HTTP/1.1 server on loopback that answers what a test tells it to.

For the few answers the emulator cannot give (``Retry-After`` as an HTTP-date, only an
``x-ratelimit-reset`` header, a 503 with Retry-After, an upstream echoing the key) and for
the plug-in example's upstream. Real sockets, real HTTP: nothing inside the client is
mocked. It records every request (with its arrival time on the monotonic clock) and counts
TCP connections, so tests can check keep-alive reuse and request spacing.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Answer:
    """What to send back. ``reset`` aborts the connection with a TCP RST instead."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    reset: bool = False
    delay_s: float = 0.0  # wait this long before answering

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> Answer:
        """A JSON answer; header names use ``_`` for ``-``."""
        named = {k.replace("_", "-"): v for k, v in headers.items()}
        return cls(status, json.dumps(payload).encode(), named)

    @classmethod
    def html(cls, status: int, page: str) -> Answer:
        """An HTML page."""
        return cls(status, page.encode(), {}, "text/html; charset=UTF-8")


Handler = Callable[[Recorded], Answer]


class Loopback:
    """The running server: set `handler` (or `answer`) before the client calls it."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.requests: list[Recorded] = []
        self.connections = 0
        self.handler: Handler = lambda request: Answer()

    def answer(self, answer: Answer) -> None:
        """Answer every request with `answer`."""
        self.handler = lambda request: answer

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                answer = self.handler(request)
                if answer.delay_s:
                    await asyncio.sleep(answer.delay_s)
                if answer.reset:
                    _reset(writer)
                    return
                writer.write(_encode(answer))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Recorded | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    at = time.monotonic()
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Recorded(method, path, headers, body, at)


def _encode(answer: Answer) -> bytes:
    reason = (
        HTTPStatus(answer.status).phrase if answer.status in HTTPStatus._value2member_map_ else ""
    )
    headers = {
        "content-type": answer.content_type,
        "content-length": str(len(answer.body)),
        **answer.headers,
    }
    head = f"HTTP/1.1 {answer.status} {reason}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return head.encode("latin-1") + b"\r\n" + answer.body


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@asynccontextmanager
async def loopback() -> AsyncIterator[Loopback]:
    """Serve on a free loopback port for the duration of the block."""
    holder: list[Loopback] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await holder[0].serve(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    holder.append(Loopback(port))
    try:
        yield holder[0]
    finally:
        server.close()
        await server.wait_closed()
