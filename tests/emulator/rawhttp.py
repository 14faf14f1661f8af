"""A minimal keep-alive HTTP/1.1 client over a real loopback socket, for timing tests.

httpx adds 0.7-3 ms (occasionally more) of Python work between ``get()`` and the bytes
leaving the socket, which is too jittery to place a request 1 ms before a limit. This client
writes pre-built request bytes in one call, so the server sees the request a fraction of a
millisecond after the test decides to send it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class RawClient:
    """One persistent connection; ``await client.get(path)`` returns a :class:`RawResponse`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()

    async def get(self, path: str) -> RawResponse:
        self._writer.write(f"GET {path} HTTP/1.1\r\nHost: emulator\r\n\r\n".encode())
        head = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head.strip().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        headers = {name.lower(): value for name, value in headers.items()}
        body = await self._reader.readexactly(int(headers["content-length"]))
        return RawResponse(int(status_line.split()[1]), headers, body)

    async def get_at(self, target: float, path: str) -> tuple[RawResponse, float]:
        """Send at monotonic ``target`` (sleep, then spin the last 10 ms); return the start too.

        Spinning blocks the loop, which is fine: the in-process emulator is idle then.
        """
        delay = target - time.monotonic() - 0.010
        if delay > 0:
            await asyncio.sleep(delay)
        while time.monotonic() < target:
            pass
        started = time.monotonic()
        return await self.get(path), started
