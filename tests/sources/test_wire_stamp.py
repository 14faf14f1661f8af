"""A start counts from the moment the request's headers are sent (DESIGN §11).

Opening a connection takes time before any byte of the request leaves (DNS, TCP, TLS): a
cold HTTPS connection to a real upstream takes tens to hundreds of milliseconds. Counting the
spacing from the job's admission instead lets the next request, sent on the now warm
connection, reach the server closer than the configured spacing (a strict server saw the first
two CoinGecko requests of a run ~175 ms apart with 200 ms configured).

The server here is real (loopback TCP, real TLS, real HTTP/1.1) and genuinely slow to open a
connection: it waits `CONNECT_DELAY_S` before answering the TLS handshake, so the client's
connect does not complete, and no request byte can leave, until then. It records when each
request's headers arrive. Note that delaying ``accept()`` would not do: the kernel completes
the TCP handshake by itself and the client sends at once; only the server's read is late.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from coinharvest.engine import Engine
from coinharvest.models import Coin, CoinStatus, SourceLimits
from coinharvest.sources.base import close_sources
from coinharvest.sources.coingecko import CoinGeckoSource
from coinharvest.sources.http import HttpClient, HttpOptions
from coinharvest.sources.sending import on_wire
from coinharvest.sources.transport import AiohttpTransport
from coinharvest.sources.wire import Answer, HandlerTransport, Request

from .loopback import Loopback

CONNECT_DELAY_S = 0.25  # the server answers a TLS handshake this late
SPACING_S = 0.30  # what the server must see between request arrivals
GUARD_S = 0.02  # client-side margin for arrival jitter (server and client share one loop)


class SlowTlsServer:
    """HTTPS on loopback; each connection's TLS handshake is answered `delay_s` late."""

    def __init__(
        self, context: ssl.SSLContext, delay_s: float, later_delays_s: tuple[float, ...] = ()
    ) -> None:
        self.context = context
        self.delay_s = delay_s
        #: Handshake delays of the 2nd, 3rd… connections (default: `delay_s` for all).
        self.later_delays_s = later_delays_s
        self.arrivals: list[float] = []  # loop clock time each request's headers arrived
        self.connections = 0
        self.url = ""
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, listener: socket.socket) -> None:
        """Accept connections (raw sockets: nothing is read before the TLS layer is on)."""
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            task = loop.create_task(self.handle(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def handle(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self.connections += 1
        later = self.later_delays_s
        n = self.connections - 2
        delay = later[n] if 0 <= n < len(later) else self.delay_s
        await asyncio.sleep(delay)  # the client's ClientHello waits unanswered
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=self.context
            )
        except (ConnectionError, ssl.SSLError):
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                self.arrivals.append(loop.time())
                target = head.split(b" ", 2)[1].decode()
                ids = parse_qs(urlsplit(target).query)["ids"][0].split(",")
                body = json.dumps([_market(i) for i in ids]).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _market(coin_id: str) -> dict[str, object]:
    return {
        "id": coin_id,
        "current_price": 100.0,
        "market_cap": 1e9,
        "total_volume": 1e8,
        "price_change_percentage_24h": 1.5,
        "circulating_supply": 1e7,
    }


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A throwaway self-signed certificate for 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    where: Path = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@asynccontextmanager
async def slow_tls_server(
    context: ssl.SSLContext,
    delay_s: float = CONNECT_DELAY_S,
    later_delays_s: tuple[float, ...] = (),
) -> AsyncIterator[SlowTlsServer]:
    server = SlowTlsServer(context, delay_s, later_delays_s)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    server.url = f"https://127.0.0.1:{listener.getsockname()[1]}/api/v3"
    accepting = asyncio.get_running_loop().create_task(server.serve(listener))
    try:
        yield server
    finally:
        accepting.cancel()
        await asyncio.gather(accepting, return_exceptions=True)
        await server.aclose()
        listener.close()


def _client_tls() -> ssl.SSLContext:
    """The test's certificate is self-signed; what is under test is timing, not trust."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_spacing_counts_from_headers_sent_not_from_admission(
    server_tls: ssl.SSLContext,
) -> None:
    """Two jobs, one request each, through the engine, on a connection that takes 250 ms
    to open. Stamped at admission, the second request would leave 320 ms after the first
    was admitted, i.e. only ~70 ms after the first reached the server; stamped when the
    headers are sent, the server sees them at least the spacing apart."""
    coins = [
        Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"}, (("coingecko",),), priority=1),
        Coin("ETH", "Ethereum", {"coingecko": "ethereum"}, (("coingecko",),), priority=2),
    ]
    async with slow_tls_server(server_tls) as server:
        transport = AiohttpTransport(ssl_context=_client_tls())
        source = CoinGeckoSource(HttpOptions(base_url=server.url, transport=transport))
        engine = Engine(
            {"coingecko": source},
            limits={"coingecko": SourceLimits(3, SPACING_S + GUARD_S, None)},
            batch_sizes={"coingecko": 1},
        )
        try:
            summary = await engine.run(coins)
        finally:
            await close_sources(engine.sources.values())
    assert [r.status for r in summary.results] == [CoinStatus.OK, CoinStatus.OK]
    assert len(server.arrivals) == 2
    first, second = server.arrivals
    gap = second - first
    print(
        f"server-side gap {gap * 1000:.1f} ms (spacing {SPACING_S * 1000:g} ms, connection "
        f"opened in {CONNECT_DELAY_S * 1000:g} ms, {server.connections} connection(s))"
    )
    assert gap >= SPACING_S


async def test_a_later_job_on_an_idle_connection_cannot_overtake_one_still_connecting(
    server_tls: ssl.SSLContext,
) -> None:
    """Three jobs, 3 in flight, 170 ms spacing; connections take 250 ms, then 300 ms, to
    open. A reaches the server at 250 ms; B, admitted at 170 ms while A still connects,
    opens a second connection and is on the wire at 470 ms; C, admitted at 420 ms (A's wire
    time + spacing), takes A's idle connection and is on the wire at once, 50 ms *before*
    B. Counting from admission or from each request's own wire time cannot prevent that;
    the engine holds each request's headers until the spacing since the last request on
    the wire has passed (without that hold: gaps of 172 and 50 ms)."""
    spacing = 0.15
    coins = [
        Coin(s, s, {"coingecko": s.lower()}, (("coingecko",),), priority=i)
        for i, s in enumerate(("AAA", "BBB", "CCC"))
    ]
    async with slow_tls_server(server_tls, 0.25, (0.30,)) as server:
        transport = AiohttpTransport(ssl_context=_client_tls())
        source = CoinGeckoSource(HttpOptions(base_url=server.url, transport=transport))
        engine = Engine(
            {"coingecko": source},
            limits={"coingecko": SourceLimits(3, spacing + GUARD_S, None)},
            batch_sizes={"coingecko": 1},
        )
        try:
            summary = await engine.run(coins)
        finally:
            await close_sources(engine.sources.values())
    assert [r.status for r in summary.results] == [CoinStatus.OK] * 3
    arrivals = sorted(server.arrivals)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    print(f"server-side gaps {[round(g * 1000, 1) for g in gaps]} ms, spacing {spacing * 1e3:g}")
    assert len(arrivals) == 3 and server.connections == 2
    assert min(gaps) >= spacing


async def test_only_the_first_request_of_a_job_is_stamped(canned: Loopback) -> None:
    """Within one job: "sent" when the request is handed over, again when its headers go
    out (aiohttp's trace), and nothing for a second request of the same job."""
    sent: list[str] = []
    client = HttpClient("s", canned.url)
    try:
        with on_wire(sent=lambda: sent.append(f"request {len(canned.requests) + 1}")):
            await client.get_json("/one")
            await client.get_json("/two")
    finally:
        await client.aclose()
    assert [r.path for r in canned.requests] == ["/one", "/two"]
    assert sent == ["request 1", "request 1"]


async def test_a_transport_that_does_not_trace_keeps_the_stamp_at_hand_over() -> None:
    sent: list[int] = []
    calls: list[int] = []

    def handler(request: Request) -> Answer:
        calls.append(len(sent))
        return Answer.of(200, b"{}")

    client = HttpClient("s", "https://s.test", transport=HandlerTransport(handler))
    try:
        with on_wire(sent=lambda: sent.append(1)):
            await client.get_json("/one")
            await client.get_json("/two")
    finally:
        await client.aclose()
    assert calls == [1, 1]  # stamped before the first request was handled, once
