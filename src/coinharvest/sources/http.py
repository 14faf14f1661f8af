"""Shared HTTP handling of every source: one client per source, one error translation.

`HttpClient` sends a source's requests through a `Transport` (`coinharvest.sources.wire`;
by default `AiohttpTransport`: connection reuse, timeouts, bounded and decoded bodies, the
send-time report) with ``User-Agent: coinharvest/<version>``, and is the **one** place where
transport errors and HTTP statuses become the project's error tree:

- HTTP 429 (or a source's own limit statuses) → `RateLimited`, with
  ``parse_retry_after(headers)`` (Retry-After seconds or HTTP-date, x-ratelimit-reset, …);
- HTTP 503 carrying a usable Retry-After → `RateLimited`;
- other 5xx → `TransientError` (status + upstream message);
- timeouts (connect, read, pool), refused or reset connections, protocol errors →
  `TransientError` (`unreachable` when the request never left: refused, DNS, TLS, a
  connect timeout);
- other 4xx, and 3xx (redirects are not followed) → `ClientError(status, upstream message)`;
  an HTML page instead of an error body (a firewall's 403) becomes ``HTML page "<title>"``;
- a 2xx that is not JSON (malformed, truncated, nested too deeply, an HTML page) or larger
  than ``max_body_bytes`` decompressed → `BadResponse` naming the source and the endpoint;
- an invalid URL, an unsupported scheme, or a request that cannot be written (a header
  value with a line break) → `PermanentError`.

A rate-limit answer without a header hint may carry one in its body (NanoRPCProxy's plain
text ``Time left: 123sec``): `parse_body_retry_after`. A *successful* answer saying the quota
is spent (``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset``, as CoinGecko sends) is
returned as usual and reported with `sending.notify_exhausted`, so the engine pauses the
source until the reset instead of walking into a 429.

Every request reports when it is on the wire (DESIGN §11, `coinharvest.sources.sending`):
when it is handed to the transport, then again when the transport says its headers are
being sent, i.e. after the connection (DNS, TCP, TLS) is open. A transport that cannot tell
(`HandlerTransport`) keeps the first report.

API keys never reach an error message: every text that becomes part of an error passes
`HttpClient._say`, which redacts (`redact`: the client's secrets, secret-looking query
values, URL credentials), *then* cuts.

`HttpSource` is the base of every built-in source (and of plug-ins that want the same
handling): it builds its `HttpClient` from `HttpOptions` and closes it in `aclose`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

import aiohttp
from yarl import URL

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
from coinharvest.sources.sending import notify_exhausted, outgoing
from coinharvest.sources.transport import CONNECT_TIMEOUT_S, AiohttpTransport
from coinharvest.sources.wire import Answer, BodyTooLarge, Request, Transport, Undecodable

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
#: Sent with every request (``Accept-Encoding``: what the transport decodes).
_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
}
_SPACE = re.compile(r"\s+")

#: Decides whether a non-2xx answer means "rate limited": ``(status, upstream message)``.
RateLimitTest = Callable[[int, str], bool]


def _is_429(status: int, message: str) -> bool:
    return status == 429


def _squash(text: str, limit: int = _MESSAGE_MAX) -> str:
    """`text` on one line, cut to at most `limit` characters with the ``...`` mark."""
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _size(n: int) -> str:
    return f"{round(n / (1 << 20), 1):g} MiB" if n >= 1 << 20 else f"{n:,} bytes"


class HttpClient:
    """One source's HTTP client; every request makes exactly one attempt (no retries).

    :param source: the source name, used in every error and log line.
    :param base_url: root URL; request paths are relative to it.
    :param params: query parameters sent with every request (e.g. a ``token``).
    :param secrets: strings that must never appear in a message (the API key).
    :param transport: how requests are sent (default: a new `AiohttpTransport` with
        `timeout_s`); closed by `aclose`.
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
        transport: Transport | None = None,
        is_rate_limited: RateLimitTest = _is_429,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._base_url = base_url
        # Paths join under the root as a directory (``/api/v3`` + ``/coins`` → ``/api/v3/coins``).
        self._root = base_url.rstrip("/") + "/"
        self._headers = {**_HEADERS, **(headers or {})}
        self._params = dict(params or {})
        self._secrets = tuple(s for s in secrets if s)
        self._is_rate_limited = is_rate_limited
        self._transport = transport or AiohttpTransport(timeout_s=timeout_s)
        self._log = get_logger(f"source:{source}")

    def __repr__(self) -> str:
        return f"<HttpClient {self.source} {self.base_url}>"

    @property
    def base_url(self) -> str:
        """The root URL, redacted."""
        return self.redact(self._base_url)

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
        """Close the transport's connections."""
        await self._transport.aclose()

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
        query = {**self._params, **params} if params else self._params
        request = Request(method, self._root + path.lstrip("/"), query, self._headers, json_body)
        with outgoing():
            answer = await self._send(request, what)
        self._log.debug(
            "%s -> %d in %.0f ms", what, answer.status, (time.perf_counter() - started) * 1e3
        )
        sending.report_rate_headers(answer.headers)
        if not answer.is_success:
            raise self._status_error(answer)
        if (reset_in := parse_quota_spent(answer.headers)) is not None:
            self._log.debug("%s: quota spent, resets in %.1f s", what, reset_in)
            notify_exhausted(reset_in)
        return self._decode(answer, what)

    async def _send(self, request: Request, what: str) -> Answer:
        """The transport's answer; whatever it raises, translated (module table)."""
        try:
            return await self._transport.send(request, self.max_body_bytes)
        except BodyTooLarge as exc:
            too_large = f"{what}: answer larger than {_size(exc.limit)} (limit MAX_RESPONSE_BYTES)"
            raise BadResponse(self.source, self._say(too_large)) from None
        except Undecodable as exc:
            undecodable = f"undecodable answer to {what}: {exc}"
            raise BadResponse(self.source, self._say(undecodable)) from None
        except aiohttp.InvalidURL as exc:
            raise PermanentError(self.source, self._say(f"invalid URL for {what}: {exc}")) from None
        except aiohttp.NonHttpUrlClientError as exc:
            unsupported = f"unsupported URL for {what}: {exc} (http or https only)"
            raise PermanentError(self.source, self._say(unsupported)) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            where = f"{request.method} {_where(request.url)}"
            raise self._transport_error(exc, where) from None
        except ValueError as exc:  # aiohttp refuses to write the request (a bad header value)
            raise PermanentError(self.source, self._say(f"cannot send {what}: {exc}")) from None

    def _transport_error(self, exc: aiohttp.ClientError | TimeoutError, what: str) -> SourceError:
        """``ConnectError: GET https://host:port/path: connection refused``: the failure, the
        full address without its query (keys travel there) and, when known, the reason."""
        kind = _kind(exc)
        if isinstance(exc, TimeoutError):  # aiohttp's connect / read timeouts are TimeoutErrors
            connect = isinstance(exc, aiohttp.ConnectionTimeoutError)
            after = min(self.timeout_s, CONNECT_TIMEOUT_S) if connect else self.timeout_s
            return TransientError(
                self.source,
                self._say(f"timed out ({kind}) after {after:g} s: {what}"),
                timed_out=True,
                unreachable=connect,
            )
        reason = _reason(exc)
        unreachable = isinstance(exc, aiohttp.ClientConnectorError)  # refused, DNS, TLS: never sent
        return TransientError(
            self.source,
            self._say(f"{kind}: {what}" + (f": {reason}" if reason else "")),
            unreachable=unreachable,
        )

    def _status_error(self, answer: Answer) -> SourceError:
        status = answer.status
        message = self._say(upstream_message(answer))
        if self._is_rate_limited(status, message):
            hint = parse_retry_after(answer.headers)
            if hint is None and answer.content and not is_html(answer):
                hint = parse_body_retry_after(text_of(answer))
            return RateLimited(self.source, hint, f"HTTP {status}: {message}")
        retry_after = parse_retry_after(answer.headers) if "retry-after" in answer.headers else None
        if status == 503 and retry_after is not None:
            return RateLimited(self.source, retry_after, f"HTTP 503: {message}")
        if status >= 500:
            return TransientError(self.source, f"HTTP {status}: {message}", retry_after)
        return ClientError(self.source, status, message)

    def _decode(self, answer: Answer, what: str) -> Any:
        if is_html(answer):
            page = html_summary(answer)
            raise BadResponse(self.source, self._say(f"{what}: {page} instead of JSON"))
        try:
            # Not orjson: 3.8 crashed the process (SIGSEGV) on a hostile body in
            # tests/fuzz/test_hostile_upstream.py; upstream answers are untrusted input.
            return json.loads(answer.content)
        except RecursionError:
            raise BadResponse(self.source, self._say(f"{what}: JSON nested too deeply")) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadResponse(self.source, self._say(f"{what}: malformed JSON ({exc})")) from None


#: What a transport failure is called in messages, most specific first: stable names that
#: say what happened (the ones the project used before aiohttp), not the library's class.
_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (aiohttp.ConnectionTimeoutError, "ConnectTimeout"),
    (TimeoutError, "ReadTimeout"),
    (aiohttp.ClientConnectorError, "ConnectError"),
    (aiohttp.ServerDisconnectedError, "RemoteProtocolError"),
    (aiohttp.ClientPayloadError, "RemoteProtocolError"),
    (aiohttp.ClientResponseError, "RemoteProtocolError"),
    (aiohttp.ClientOSError, "ReadError"),
)


def _kind(exc: BaseException) -> str:
    return next((name for cls, name in _KINDS if isinstance(exc, cls)), type(exc).__name__)


def _where(url: str) -> str:
    """`url` as an error names it: scheme, host, port and path; no query, fragment or
    ``user:password@`` (API keys travel in the query; a key in the path is redacted later)."""
    try:
        parsed = URL(url)
        return str(parsed.with_query(None).with_fragment(None).with_user(None))
    except (TypeError, ValueError):
        return url.partition("?")[0]


def _reason(exc: BaseException) -> str:
    """Why a connection failed, short: the OS's words (``connection refused``, ``Name or
    service not known``) rather than aiohttp's ``Cannot connect to host ... ssl:default``."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        error, errno = exc.os_error, exc.os_error.errno
        plain = not isinstance(error, socket.gaierror) and errno is not None and errno > 0
        why = (
            os.strerror(errno)  # asyncio's strerror: "Connect call failed ('1.2.3.4', 9)"
            if plain and errno is not None
            else error.strerror or str(error) or str(exc)
        )
        return why[:1].lower() + why[1:]
    return str(exc)


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
