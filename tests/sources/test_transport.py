"""The aiohttp transport keeps the promises httpx kept: one attempt, proxies from the env.

Real sockets on loopback; the servers here are a few lines of asyncio streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from coinharvest.errors import TransientError
from coinharvest.sources import sending
from coinharvest.sources.http import HttpClient

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n[1]"


@asynccontextmanager
async def _server(serve: Serve) -> AsyncIterator[str]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)  # type: ignore[arg-type]
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_a_dropped_keep_alive_connection_is_not_silently_retried() -> None:
    """aiohttp resends a GET once when a kept-alive connection drops; the limiter counted
    one start and a metered API would bill two, so the job fails instead (and is retried
    by the engine, under the limits)."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if len(heads) == 2:  # the second request, on the kept-alive connection
                writer.transport.abort()
                return
            writer.write(OK)
            await writer.drain()

    gates: list[int] = []

    async def gate() -> None:
        gates.append(1)

    async with _server(serve) as url:
        client = HttpClient("t", url, timeout_s=2)
        try:
            with sending.on_wire(gate=gate):
                assert await client.get_json("/x") == [1]
            with sending.on_wire(gate=gate), pytest.raises(TransientError, match="disconnected"):
                await client.get_json("/x")
        finally:
            await client.aclose()
    assert len(heads) == 2 and len(gates) == 2


async def test_http_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    heads: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(OK)
        await writer.drain()
        writer.close()

    async with _server(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = HttpClient("t", "http://upstream.invalid/api")
        try:
            assert await client.get_json("/x") == [1]
        finally:
            await client.aclose()
    assert heads[0].startswith(b"GET http://upstream.invalid/api/x HTTP/1.1")
