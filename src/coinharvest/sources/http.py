"""Shared HTTP handling of every source: one client per source, one error translation.

`HttpClient` wraps one `httpx.AsyncClient` per source (connection reuse, timeout,
``User-Agent: coinharvest/<version>``, an injectable `transport` seam for tests) and is the
**one** place where httpx errors and HTTP statuses become the project's error tree:

- HTTP 429 (or a source's own limit statuses) → `RateLimited`, with
  ``parse_retry_after(headers)`` (Retry-After seconds or HTTP-date, x-ratelimit-reset, …);
- HTTP 503 carrying a usable Retry-After → `RateLimited`;
- other 5xx → `TransientError` (status + upstream message);
- timeouts (connect, read, write, pool), refused or reset connections, protocol errors →
  `TransientError`;
- other 4xx, and 3xx (redirects are not followed) → `ClientError(status, upstream message)`;
  an HTML page instead of an error body (a firewall's 403) becomes ``HTML page "<title>"``;
- a 2xx that is not JSON (malformed, truncated, nested too deeply, an HTML page) or larger
  than ``max_body_bytes`` decompressed → `BadResponse` naming the source and the endpoint;
- an invalid URL or unsupported scheme → `PermanentError`.

A rate-limit answer without a header hint may carry one in its body (NanoRPCProxy's plain
text ``Time left: 123sec``): `parse_body_retry_after`. A *successful* answer saying the quota
is spent (``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset``, as CoinGecko sends) is
returned as usual and reported with `sending.notify_exhausted`, so the engine pauses the
source until the reset instead of walking into a 429.

Every request reports when it is on the wire (DESIGN §11, `coinharvest.sources.sending`): when it is
handed to the transport, then again when httpcore's ``trace`` extension says its headers are
being sent (``http11.`` / ``http2.send_request_headers.started``), i.e. after the connection
(DNS, TCP, TLS) is open. A transport that does not trace (``httpx.MockTransport``, ASGI)
keeps the first report.

Bodies are streamed and at most ``max_body_bytes`` of them held, decompressed: gzip and
deflate are decoded here, `_INFLATE_STEP` bytes at a time (deflate expands at most ~1032:1),
so neither a huge answer nor a small gzip bomb costs much. API keys never reach an error
message: every text that becomes part of an error passes `HttpClient._say`, which redacts
(`redact`: the client's secrets, secret-looking query values, URL credentials), *then* cuts.

`HttpSource` is the base of every built-in source (and of plug-ins that want the same
handling): it builds its `HttpClient` from `HttpOptions` and closes it in `aclose`.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

import httpx

from coinharvest import __version__
from coinharvest.errors import (
    BadResponse,
    ClientError,
    PermanentError,
    RateLimited,
    SourceError,
    TransientError,
)
from coinharvest.logs import get_logger
from coinharvest.sources import sending
from coinharvest.sources.answers import html_summary, is_html, text_of, upstream_message
from coinharvest.sources.base import REDACTED, Source, redact
from coinharvest.sources.options import DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT_S, HttpOptions
from coinharvest.sources.retry_after import (
    parse_body_retry_after,
    parse_quota_spent,
    parse_retry_after,
)
from coinharvest.sources.sending import about_to_send, notify_exhausted, outgoing

if TYPE_CHECKING:
    from coinharvest.config import Settings

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_TIMEOUT_S",
    "REDACTED",
    "USER_AGENT",
    "HttpClient",
    "HttpOptions",
    "HttpSource",
    "RateLimitTest",
    "redact",
    "upstream_message",
]

USER_AGENT = f"coinharvest/{__version__}"
_MESSAGE_MAX = 200  # characters of an error message (after redaction)
_SCAN_MAX = 4 * _MESSAGE_MAX  # characters of upstream text redacted to make one
_ERROR_BODY_MAX = 64 * 1024  # bytes of an error answer read for its message
CONNECT_TIMEOUT_S = 5.0  # longest wait for a connection (DNS, TCP, TLS), within the timeout
_INFLATE_STEP = 1024  # compressed bytes decompressed at a time
#: Sent with every request (``Accept-Encoding``: what `_body` decodes).
_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
}
#: Headers that describe the body as sent; dropped once it is read and decoded.
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_SPACE = re.compile(r"\s+")
#: httpcore ``trace`` events that mean "the request's headers are being sent now".
_HEADERS_SENT = frozenset(
    {"http11.send_request_headers.started", "http2.send_request_headers.started"}
)

#: Decides whether a non-2xx answer means "rate limited": ``(status, upstream message)``.
RateLimitTest = Callable[[int, str], bool]


def _check_complete(decode: Callable[[bytes], bytes]) -> None:
    """A compressed answer must end where its stream says (a truncated gzip is not whole)."""
    stream = getattr(decode, "__self__", None)
    if isinstance(stream, type(zlib.decompressobj())) and not stream.eof:
        raise ValueError("compressed answer cut short")


def _is_429(status: int, message: str) -> bool:
    return status == 429


def _squash(text: str, limit: int = _MESSAGE_MAX) -> str:
    """`text` on one line, cut to at most `limit` characters with the ``...`` mark."""
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _size(n: int) -> str:
    return f"{round(n / (1 << 20), 1):g} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def _body(response: httpx.Response) -> tuple[AsyncIterator[bytes], Callable[[bytes], bytes]]:
    """`response`'s body as it comes, and how to decode each chunk of it."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if response.is_stream_consumed:  # answered from memory (httpx.MockTransport): decoded
        return response.aiter_bytes(), bytes
    if encoding in ("", "identity"):
        return response.aiter_raw(), bytes
    if encoding in ("gzip", "x-gzip", "deflate"):  # a gzip or zlib header, told apart by zlib
        return response.aiter_raw(_INFLATE_STEP), zlib.decompressobj(zlib.MAX_WBITS | 32).decompress
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class HttpClient:
    """One source's HTTP client; every request makes exactly one attempt (no retries).

    :param source: the source name, used in every error and log line.
    :param base_url: root URL; request paths are relative to it.
    :param params: query parameters sent with every request (e.g. a ``token``).
    :param secrets: strings that must never appear in a message (the API key).
    :param is_rate_limited: which non-2xx answers mean "too many requests" (default: 429).
    :param max_body_bytes: the largest good answer, decompressed; a larger one fails the job.
    """

    def __init__(
        self,
        source: str,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        secrets: Iterable[str | None] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        is_rate_limited: RateLimitTest = _is_429,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._secrets = tuple(s for s in secrets if s)
        self._is_rate_limited = is_rate_limited
        self._log = get_logger(f"source:{source}")
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={**_HEADERS, **(headers or {})},
            params=dict(params or {}),
            # A dead host (DNS, SYN) is known sooner than a slow answer: connecting gets less.
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"<HttpClient {self.source} {self.redact(str(self._client.base_url))}>"

    @property
    def base_url(self) -> str:
        """The root URL, redacted."""
        return self.redact(str(self._client.base_url))

    def redact(self, text: str) -> str:
        """`text` without this client's secrets (see `redact`)."""
        return redact(text, self._secrets)

    def _say(self, text: str) -> str:
        """The one way text becomes part of an error: one line, redacted, *then* cut (only
        its first `_SCAN_MAX` characters are read, cut with the mark `redact` knows)."""
        return _squash(self.redact(_squash(text, _SCAN_MAX)))

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET `path` and return its decoded JSON; raises per the module's table."""
        return await self._request("GET", path, params=params)

    async def post_json(self, path: str, payload: Any) -> Any:
        """POST `payload` as JSON to `path` and return the decoded answer."""
        return await self._request("POST", path, json_body=payload)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Any:
        what = f"{method} {path or '/'}"
        started = time.perf_counter()
        try:
            with outgoing():
                async with self._client.stream(
                    method,
                    path,
                    params=dict(params) if params else None,
                    json=json_body,
                    extensions={"trace": _trace},
                ) as streamed:
                    response = await self._read(streamed, what)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, what) from None
        except httpx.InvalidURL as exc:
            raise PermanentError(self.source, self._say(f"invalid URL for {what}: {exc}")) from None
        self._log.debug(
            "%s -> %d in %.0f ms", what, response.status_code, (time.perf_counter() - started) * 1e3
        )
        sending.report_rate_headers(response.headers)
        if not response.is_success:
            raise self._status_error(response)
        if (reset_in := parse_quota_spent(response.headers)) is not None:
            self._log.debug("%s: quota spent, resets in %.1f s", what, reset_in)
            notify_exhausted(reset_in)
        return self._decode(response, what)

    async def _read(self, response: httpx.Response, what: str) -> httpx.Response:
        """`response` with its body read, decoded and bounded: a good answer's up to
        `max_body_bytes` (more fails the job), an error answer's to `_ERROR_BODY_MAX`."""
        good = response.is_success
        limit = self.max_body_bytes if good else min(self.max_body_bytes, _ERROR_BODY_MAX)
        body = bytearray()
        try:
            chunks, decode = _body(response)
            async for raw in chunks:
                body += decode(raw)
                if len(body) > limit:
                    break
            else:
                _check_complete(decode)
        except (zlib.error, ValueError) as exc:
            undecodable = f"undecodable answer to {what}: {exc}"
            raise BadResponse(self.source, self._say(undecodable)) from None
        if len(body) > limit and good:
            too_large = f"{what}: answer larger than {_size(limit)} (limit MAX_RESPONSE_BYTES)"
            raise BadResponse(self.source, self._say(too_large))
        del body[limit:]
        # Raw bytes: a header value that is not ASCII must not fail the answer.
        headers = [
            (k, v) for k, v in response.headers.raw if k.lower().decode() not in _BODY_HEADERS
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=bytes(body),
            request=response.request,
            extensions=response.extensions,
        )

    def _transport_error(self, exc: httpx.HTTPError, what: str) -> SourceError:
        kind = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return TransientError(
                self.source,
                self._say(
                    f"timed out ({kind}) after {_timeout_of(exc, self.timeout_s):g} s: {what}"
                ),
                timed_out=True,
                unreachable=isinstance(exc, httpx.ConnectTimeout),
            )
        if isinstance(exc, httpx.LocalProtocolError):  # our own request is malformed
            return PermanentError(self.source, self._say(f"cannot send {what}: {exc}"))
        if isinstance(exc, httpx.UnsupportedProtocol):
            return PermanentError(self.source, self._say(f"unsupported URL for {what}: {exc}"))
        detail = f" ({self._client.base_url.host}): {exc}" if str(exc) else ""
        unreachable = isinstance(exc, httpx.ConnectError)  # refused, DNS, TLS: never sent
        return TransientError(
            self.source, self._say(f"{kind} on {what}{detail}"), unreachable=unreachable
        )

    def _status_error(self, response: httpx.Response) -> SourceError:
        status = response.status_code
        message = self._say(upstream_message(response))
        if self._is_rate_limited(status, message):
            hint = parse_retry_after(response.headers)
            if hint is None and response.content and not is_html(response):
                hint = parse_body_retry_after(text_of(response))
            return RateLimited(self.source, hint, f"HTTP {status}: {message}")
        retry_after = (
            parse_retry_after(response.headers) if "retry-after" in response.headers else None
        )
        if status == 503 and retry_after is not None:
            return RateLimited(self.source, retry_after, f"HTTP 503: {message}")
        if status >= 500:
            return TransientError(self.source, f"HTTP {status}: {message}", retry_after)
        return ClientError(self.source, status, message)

    def _decode(self, response: httpx.Response, what: str) -> Any:
        if is_html(response):
            page = html_summary(response)
            raise BadResponse(self.source, self._say(f"{what}: {page} instead of JSON"))
        try:
            return json.loads(response.content)
        except RecursionError:
            raise BadResponse(self.source, self._say(f"{what}: JSON nested too deeply")) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadResponse(self.source, self._say(f"{what}: malformed JSON ({exc})")) from None


def _timeout_of(exc: httpx.TimeoutException, timeout_s: float) -> float:
    """The timeout that expired: the connect timeout for a connect, else the request's."""
    return min(timeout_s, CONNECT_TIMEOUT_S) if isinstance(exc, httpx.ConnectTimeout) else timeout_s


async def _trace(event: str, info: Mapping[str, Any]) -> None:
    """httpcore's ``trace`` callback: limits count from the moment the headers are sent
    (which the engine may hold back until the source's spacing allows: `about_to_send`)."""
    if event in _HEADERS_SENT:
        await about_to_send()


class HttpSource(Source):
    """Base of sources that talk HTTP through one `HttpClient`.

    Subclasses set `name`, `default_limits`, `batch_size`, `default_base_url`, implement
    `fetch`, and may override `auth_headers` / `auth_params` / `is_rate_limited`.
    `from_settings` is how the registry builds a source; override it to read more settings.
    """

    #: Root URL used when neither ``<SRC>_BASE_URL`` nor an override is given.
    default_base_url: ClassVar[str]

    def __init__(self, options: HttpOptions | None = None) -> None:
        self.options = options or HttpOptions()
        self.http = HttpClient(
            self.name,
            self.options.base_url or self.default_base_url,
            timeout_s=self.options.timeout_s,
            headers=self.auth_headers(),
            params=self.auth_params(),
            secrets=[self.options.api_key],
            transport=self.options.transport,
            is_rate_limited=self.is_rate_limited,
            max_body_bytes=self.options.max_body_bytes,
        )

    @classmethod
    def from_settings(cls, settings: Settings, options: HttpOptions) -> Self:
        """Build the source with `options` (override to read more settings)."""
        return cls(options)

    @property
    def api_key(self) -> str | None:
        """The configured API key, if any."""
        return self.options.api_key

    def auth_headers(self) -> dict[str, str]:
        """Headers that carry the API key (none by default)."""
        return {}

    def auth_params(self) -> dict[str, str]:
        """Query parameters that carry the API key (none by default)."""
        return {}

    def is_rate_limited(self, status: int, message: str) -> bool:
        """Whether a non-2xx answer means "too many requests" (default: HTTP 429)."""
        return status == 429

    def redact(self, text: str) -> str:
        """`text` without this source's key (its client's secrets) or other secrets."""
        return self.http.redact(text)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()
