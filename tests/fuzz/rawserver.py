"""A loopback HTTP/1.1 server that answers with *bytes*, lies included.

tests/sources/loopback.py answers well-formed HTTP; a hostile upstream does not. Each
`Wire` says what one answer looks like on the wire: status, headers, body, how the body is
encoded (gzip, deflate, a corrupt or truncated gzip, an unsupported coding) and how it is
framed (exact ``Content-Length``, a length that is too short or too long, chunked, a bad
chunk, read-to-EOF, cut mid-body, a TCP reset, a server that stalls). The server routes by
the first path segment (``/coingecko/…``, ``/3xpl/…``): each source gets the next answer of
its own script, round-robin. Real sockets, nothing in the client is mocked.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

#: Framings after which the connection is closed (or reset, or left hanging).
_CLOSING = frozenset({"long-close", "eof", "truncate", "reset", "stall", "short", "chunked-bad"})
#: Bytes handed to the transport at a time.
_WRITE_STEP = 64 * 1024
#: How long a stalled answer hangs at most (the client's timeout ends it sooner).
STALL_S = 5.0


@dataclass(frozen=True)
class Wire:
    """One answer as bytes on the wire (see the module docstring).

    `body` is either bytes or a callable that renders the body for the request's path (so a
    payload shaped like the source's real answer can follow what was asked for).
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | Callable[[str], bytes] = b"{}"
    encoding: str = "identity"
    framing: str = "exact"

    def render(self, path: str) -> tuple[bytes, bool]:
        """The bytes to send for a request to `path`, and whether to close afterwards."""
        raw = self.body(path) if callable(self.body) else self.body
        body, coding = _encode(raw, self.encoding)
        headers = list(self.headers)
        if coding:
            headers.append(("Content-Encoding", coding))
        payload, framing_headers = _frame(body, self.framing)
        head = f"HTTP/1.1 {self.status} X\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in [*framing_headers, *headers]
        )
        return head.encode("utf-8", "surrogateescape") + b"\r\n" + payload, (
            self.framing in _CLOSING
        )


def _encode(body: bytes, encoding: str) -> tuple[bytes, str]:
    if encoding == "gzip":
        return gzip.compress(body, 1), "gzip"
    if encoding == "deflate":
        return zlib.compress(body, 1), "deflate"
    if encoding == "gzip-corrupt":
        return b"\x1f\x8b\x08\x00" + body[:64], "gzip"
    if encoding == "gzip-truncated":
        packed = gzip.compress(body, 1)
        return packed[: max(1, len(packed) // 2)], "gzip"
    if encoding == "br":
        return body, "br"
    if encoding == "gzip-twice":
        return gzip.compress(body, 1), "gzip, gzip"
    return body, ""


def _frame(body: bytes, framing: str) -> tuple[bytes, list[tuple[str, str]]]:
    """`body` framed as `framing`, and the framing headers."""
    n = len(body)
    if framing == "short":
        return body, [("Content-Length", str(n // 2))]
    if framing in ("long-close", "stall"):
        return body, [("Content-Length", str(n + 1000))]
    if framing == "chunked":
        chunks = b"".join(
            f"{len(body[i : i + 4096]):x}\r\n".encode() + body[i : i + 4096] + b"\r\n"
            for i in range(0, n, 4096)
        )
        return chunks + b"0\r\n\r\n", [("Transfer-Encoding", "chunked")]
    if framing == "chunked-bad":
        return b"zz\r\n" + body[:10], [("Transfer-Encoding", "chunked")]
    if framing == "eof":
        return body, []
    if framing == "truncate":
        return body[: n // 2], [("Content-Length", str(n))]
    if framing == "cl-garbage":
        return body, [("Content-Length", "12abc")]
    if framing == "cl-twice":
        return body, [("Content-Length", str(n)), ("Content-Length", str(n + 1))]
    return body, [("Content-Length", str(n))]


@dataclass
class RawServer:
    """The running server: `scripts` maps a route (a source name) to its answers."""

    url: str
    scripts: dict[str, Sequence[Wire]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    _turn: dict[str, int] = field(default_factory=dict)
    _rendered: dict[int, tuple[bytes, bool]] = field(default_factory=dict)

    def prepare(self) -> None:
        """Render every answer whose body does not depend on the path now, so what the
        server holds is allocated before a test starts measuring the client's memory."""
        for script in self.scripts.values():
            for wire in script:
                if not callable(wire.body):
                    self._rendered[id(wire)] = wire.render("")

    def _render(self, wire: Wire, path: str) -> tuple[bytes, bool]:
        return self._rendered.get(id(wire)) or wire.render(path)

    def next_wire(self, path: str) -> Wire:
        route = path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        script = self.scripts.get(route) or [Wire(404, body=b'{"error": "no such route"}')]
        turn = self._turn.get(route, 0)
        self._turn[route] = turn + 1
        return script[turn % len(script)]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                path = await _read_request(reader)
                if path is None:
                    return
                self.requests.append(path)
                wire = self.next_wire(path)
                data, close = self._render(wire, path)
                if wire.framing == "reset":
                    _reset(writer)
                    return
                view = memoryview(data)
                for start in range(0, len(data), _WRITE_STEP):  # a bounded send buffer
                    writer.write(view[start : start + _WRITE_STEP])
                    await writer.drain()
                if wire.framing == "stall":
                    await asyncio.wait_for(reader.read(), STALL_S)  # until the client leaves
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            return
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> str | None:
    """The request's path (its body is read and dropped), or None at the end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    _, path, _ = lines[0].split(" ", 2)
    headers: Mapping[str, str] = {
        k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
    }
    await reader.readexactly(int(headers.get("content-length", "0")))
    return path


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@asynccontextmanager
async def raw_server() -> AsyncIterator[RawServer]:
    """Serve on a free loopback port for the duration of the block."""
    holder: list[RawServer] = []
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        try:
            await holder[0].serve(reader, writer)
        except asyncio.CancelledError:  # the server is closing: not an error of the test
            writer.close()
        finally:
            if task is not None:
                tasks.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    holder.append(RawServer(f"http://127.0.0.1:{port}"))
    try:
        yield holder[0]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def closed_port_url() -> str:
    """A loopback URL nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
