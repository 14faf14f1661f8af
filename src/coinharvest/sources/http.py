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
- a 2xx that is not JSON (malformed, truncated, an HTML page) → `BadResponse` naming the
  source and the endpoint;
- an invalid URL or unsupported scheme → `PermanentError`.

A rate-limit answer without a header hint may carry one in its body (NanoRPCProxy's plain
text ``Time left: 123sec``): `parse_body_retry_after`. A *successful* answer saying the quota
is spent (``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset``, as CoinGecko sends) is
returned as usual and reported with `sending.notify_exhausted`, so the engine pauses the
source until the reset instead of walking into a 429.

Every request reports when it is on the wire (DESIGN §11, `coinharvest.sending`): when it is
handed to the transport, then again when httpcore's ``trace`` extension says its headers are
being sent (``http11.`` / ``http2.send_request_headers.started``), i.e. after the connection
(DNS, TCP, TLS) is open. A transport that does not trace (``httpx.MockTransport``, ASGI)
keeps the first report.

API keys never reach an error message or a log line: every message passes through
`redact`, which replaces the client's secrets and any ``token=``, ``key=``, ``api_key=``,
``x_cg_demo_api_key=`` or ``x_cg_pro_api_key=`` query value with ``***``.

`HttpSource` is the base of every built-in source (and of plug-ins that want the same
handling): it builds its `HttpClient` from `HttpOptions` and closes it in `aclose`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
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
from coinharvest.sources.base import Source
from coinharvest.sources.options import DEFAULT_TIMEOUT_S, HttpOptions
from coinharvest.sources.retry_after import (
    parse_body_retry_after,
    parse_quota_spent,
    parse_retry_after,
)
from coinharvest.sources.sending import about_to_send, notify_exhausted, outgoing

if TYPE_CHECKING:
    from coinharvest.config import Settings

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "USER_AGENT",
    "HttpClient",
    "HttpOptions",
    "HttpSource",
    "RateLimitTest",
    "redact",
    "upstream_message",
]

USER_AGENT = f"coinharvest/{__version__}"
REDACTED = "***"
_MESSAGE_MAX = 200  # characters of an upstream message kept in an error
_SECRET_PARAM = re.compile(
    r"(?i)(?<![\w])(token|key|api_key|apikey|x_cg_demo_api_key|x_cg_pro_api_key)=([^&\s#\"']+)"
)
_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")
_MESSAGE_KEYS = ("error_message", "message", "error", "detail")
#: httpcore ``trace`` events that mean "the request's headers are being sent now".
_HEADERS_SENT = frozenset(
    {"http11.send_request_headers.started", "http2.send_request_headers.started"}
)

#: Decides whether a non-2xx answer means "rate limited": ``(status, upstream message)``.
RateLimitTest = Callable[[int, str], bool]


def _is_429(status: int, message: str) -> bool:
    return status == 429


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret, and every secret-looking query value, replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def _squash(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 3] + "..."


def _is_html(response: httpx.Response) -> bool:
    """An HTML page: a body that starts with a tag, or says it is HTML and has tags.

    Not every ``text/html`` answer is a page: NanoRPCProxy (Express ``res.send``) sends its
    plain-text 429 ``… Time left: 42sec`` as ``text/html``, and that text must be read.
    """
    head = response.content.lstrip()[:512]
    kind = response.headers.get("content-type", "").lower()
    return head[:1] == b"<" or ("html" in kind and b"<" in head)


def _html_summary(response: httpx.Response) -> str:
    title = _TITLE.search(response.text)
    return f'HTML page "{_squash(title.group(1))}"' if title else "HTML page"


def _json_message(document: Any) -> str | None:
    """The human message in the error shapes upstreams use (CoinGecko's three, Blockchair's
    ``context.error``, NearBlocks' ``message``, Nano's ``error``), with any error code."""
    if not isinstance(document, dict):
        return None
    places = [document]
    for nested in ("status", "context"):
        if isinstance(document.get(nested), dict):
            places.append(document[nested])
    text = next(
        (p[k] for p in places for k in _MESSAGE_KEYS if isinstance(p.get(k), str) and p[k]), None
    )
    code = next((p["error_code"] for p in places if isinstance(p.get("error_code"), int)), None)
    if text is None:
        return None if code is None else f"error_code {code}"
    return text if code is None or code == 429 else f"{text} (error_code {code})"


def upstream_message(response: httpx.Response) -> str:
    """A short, one-line description of an error answer (not yet redacted)."""
    if not response.content:
        return response.reason_phrase or "empty body"
    if _is_html(response):
        return _html_summary(response)
    try:
        message = _json_message(response.json())
    except ValueError:
        message = None
    return _squash(message if message is not None else response.text)


class HttpClient:
    """One source's HTTP client; every request makes exactly one attempt (no retries).

    :param source: the source name, used in every error and log line.
    :param base_url: root URL; request paths are relative to it.
    :param params: query parameters sent with every request (e.g. a ``token``).
    :param secrets: strings that must never appear in a message (the API key).
    :param is_rate_limited: which non-2xx answers mean "too many requests" (default: 429).
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
    ) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self._secrets = tuple(s for s in secrets if s)
        self._is_rate_limited = is_rate_limited
        self._log = get_logger(f"source:{source}")
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            params=dict(params or {}),
            timeout=timeout_s,
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
                response = await self._client.request(
                    method,
                    path,
                    params=dict(params) if params else None,
                    json=json_body,
                    extensions={"trace": _trace},
                )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, what) from None
        except httpx.InvalidURL as exc:
            raise PermanentError(
                self.source, self.redact(f"invalid URL for {what}: {exc}")
            ) from None
        self._log.debug(
            "%s -> %d in %.0f ms", what, response.status_code, (time.perf_counter() - started) * 1e3
        )
        if not response.is_success:
            raise self._status_error(response)
        if (reset_in := parse_quota_spent(response.headers)) is not None:
            self._log.debug("%s: quota spent, resets in %.1f s", what, reset_in)
            notify_exhausted(reset_in)
        return self._decode(response, what)

    def _transport_error(self, exc: httpx.HTTPError, what: str) -> SourceError:
        kind = type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return TransientError(
                self.source,
                f"timed out ({kind}) after {self.timeout_s:g} s: {what}",
                timed_out=True,
            )
        if isinstance(exc, httpx.UnsupportedProtocol):
            return PermanentError(self.source, self.redact(f"unsupported URL for {what}: {exc}"))
        if isinstance(exc, httpx.DecodingError):
            return BadResponse(self.source, self.redact(f"undecodable answer to {what}: {exc}"))
        detail = f": {_squash(str(exc))}" if str(exc) else ""
        return TransientError(self.source, self.redact(f"{kind} on {what}{detail}"))

    def _status_error(self, response: httpx.Response) -> SourceError:
        status = response.status_code
        message = self.redact(upstream_message(response))
        if self._is_rate_limited(status, message):
            hint = parse_retry_after(response.headers)
            if hint is None and response.content and not _is_html(response):
                hint = parse_body_retry_after(response.text)
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
        if _is_html(response):
            raise BadResponse(self.source, f"{what}: {_html_summary(response)} instead of JSON")
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadResponse(
                self.source, f"{what}: malformed JSON ({_squash(str(exc))})"
            ) from None


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

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()
