"""The network `Transport` of every HTTP source, on aiohttp.

Why aiohttp and not httpx: for W5's requests on this project's machine, a request through
httpx cost 1.8–2.0 ms of CPU and through aiohttp 0.5 ms, a 250-id CoinGecko answer 8.9 ms
vs 4.0 ms (``python bench/http_clients.py``; docs/BENCHMARKS.md). A 10,000-request run was
CPU-bound on the client; the send-time report below works the same on both.

- One ``aiohttp.ClientSession`` per transport, made on first use inside the event loop that
  uses it (a session belongs to one loop; a transport used from a new loop makes a new one),
  with its own pool of keep-alive connections.
- Timeouts as httpx counted them: getting a connection (DNS, TCP, TLS) at most `connect_s`,
  each read at most `timeout_s`.
- One attempt per request: redirects are not followed (a 3xx is an answer), and aiohttp's
  silent resend of an idempotent request on a dropped keep-alive connection is off (the
  limiter counted one start; a metered API would bill two).
- As httpx did: ``HTTP(S)_PROXY`` / ``NO_PROXY`` are honoured and TLS is verified against
  certifi's CA bundle. The proxy is looked up once per host and transport: aiohttp's own
  ``trust_env`` looks it up, and reads ``~/.netrc``, on a thread for every request
  (~1.1 ms of CPU a request, more than the request itself).
- Bodies are read as they come and never held past the limit (`wire` contract): aiohttp's
  own decompression is off; gzip and deflate are inflated here, `_INFLATE_STEP` compressed
  bytes at a time (deflate expands at most ~1032:1), so neither a huge answer nor a small
  gzip bomb costs much memory.
- aiohttp's ``on_request_headers_sent`` trace runs after the connection is open and just
  before the headers are written: it awaits `sending.about_to_send()`, which may hold the
  request until the source's spacing allows and then stamps its start (DESIGN §11).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import zlib
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import certifi

from coinharvest.sources.options import DEFAULT_TIMEOUT_S
from coinharvest.sources.sending import about_to_send
from coinharvest.sources.wire import ERROR_BODY_MAX, Answer, BodyTooLarge, Request, Undecodable

__all__ = ["CONNECT_TIMEOUT_S", "AiohttpTransport"]

#: Longest wait for a connection to open (DNS, TCP, TLS), within the request's timeout.
CONNECT_TIMEOUT_S = 5.0
_INFLATE_STEP = 1024  # compressed bytes decompressed at a time


class AiohttpTransport:
    """Sends `Request` s over HTTP/1.1 with aiohttp (see the module doc).

    :param timeout_s: longest wait for a pooled connection and for each read.
    :param connect_s: longest wait for a new connection to open (default: the lesser of
        `CONNECT_TIMEOUT_S` and `timeout_s`).
    :param ssl_context: TLS settings (default: the system's CA bundle, verified).
    """

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_s: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.connect_s = min(timeout_s, CONNECT_TIMEOUT_S) if connect_s is None else connect_s
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_headers_sent)
            timeout = aiohttp.ClientTimeout(
                total=None, connect=self.connect_s, sock_connect=self.connect_s,
                sock_read=self.timeout_s,
            )  # fmt: skip
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context or _default_tls()),
                timeout=timeout,
                auto_decompress=False,
                trace_configs=[trace],
            )
            # No public switch: aiohttp resends a GET once if a kept-alive connection drops.
            self._session._retry_connection = False
            self._loop = loop
        return self._session

    async def send(self, request: Request, limit: int) -> Answer:
        """One attempt at `request` (the `wire` contract)."""
        async with self._client().request(
            request.method,
            request.url,
            params=dict(request.params) or None,
            headers=dict(request.headers),
            proxy=self._proxy(request.url),
            json=request.json,
            allow_redirects=False,
        ) as response:
            good = 200 <= response.status < 300
            keep = limit if good else min(limit, ERROR_BODY_MAX)
            body = await _read(response, keep)
            if len(body) > keep:
                if good:
                    raise BodyTooLarge(limit)
                del body[keep:]
            return Answer(response.status, response.headers, bytes(body), response.reason or "")

    def _proxy(self, url: str) -> str | None:
        """The proxy the environment names for `url`'s scheme and host (None: direct)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxies:
            bypass = not key[1] or proxy_bypass(key[1])
            self._proxies[key] = None if bypass else getproxies().get(key[0])
        return self._proxies[key]

    async def aclose(self) -> None:
        """Close the session's connections (a no-op if never used or already closed)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """Verified TLS with certifi's CA bundle (what httpx used); built once (~50 ms)."""
    return ssl.create_default_context(cafile=certifi.where())


async def _headers_sent(*_: Any) -> None:
    await about_to_send()


async def _read(response: aiohttp.ClientResponse, keep: int) -> bytearray:
    """`response`'s body, decoded, stopping once it is longer than `keep` bytes."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    body = bytearray()
    if encoding in ("", "identity"):
        async for raw in response.content.iter_any():
            body += raw
            if len(body) > keep:
                break
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise Undecodable(f"unsupported Content-Encoding {encoding!r}")
    stream = zlib.decompressobj(zlib.MAX_WBITS | 32)  # a gzip or zlib header, told apart
    try:
        async for raw in response.content.iter_chunked(_INFLATE_STEP):
            body += stream.decompress(raw)
            if len(body) > keep:
                return body
    except zlib.error as exc:
        raise Undecodable(str(exc)) from None
    if not stream.eof:
        raise Undecodable("compressed answer cut short")
    return body
