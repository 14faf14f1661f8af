"""The contract every emulated upstream implements.

An upstream owns a path prefix and everything that differs between real APIs: routing,
who the caller is (API key), the JSON of each endpoint, and the exact bodies and headers
of its errors. Limits, latency, faults and stats are applied uniformly by
:class:`coinharvest.emulator.app.EmulatorApp`, which calls, for each request:

1. :meth:`Upstream.route` — the endpoint label and its handler, or ``None`` (→ :meth:`not_found`);
2. :meth:`Upstream.identify` — the key label, or an auth error response;
3. after admission, the handler; on a limit breach or storm, :meth:`Upstream.rejection`;
   on an injected 5xx, :meth:`Upstream.server_error`;
4. with ``capacity.headers`` on, :meth:`Upstream.quota_headers` for every answer.

Handlers must be fast, synchronous and pure functions of the request and the data clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from coinharvest.emulator.config import AuthConfig, ShapeConfig, UpstreamName
from coinharvest.emulator.data import MarketData
from coinharvest.emulator.faults import cdn_error_page
from coinharvest.emulator.http import Request, Response, html_response, json_response

__all__ = [
    "Handler",
    "RejectionContext",
    "Route",
    "Upstream",
    "anonymous",
    "block_hash",
    "iso_ms",
]

#: A handler turns a request (and the caller's key label) into a response.
Handler = Callable[[Request, str], Response]


@dataclass(frozen=True, slots=True)
class Route:
    """A matched endpoint: ``endpoint`` is the label used in stats (e.g. ``/coins/{id}``).

    ``cacheable`` answers may be reused for identical requests within one data period
    (the upstreams' edge cache); set it to ``False`` when the answer depends on the caller.
    """

    endpoint: str
    handler: Handler
    cacheable: bool = True


@dataclass(frozen=True, slots=True)
class RejectionContext:
    """What an upstream needs to build its rate-limit answer.

    :ivar status: configured status (only Blockchair honours values other than 429).
    :ivar retry_after: whole seconds for ``Retry-After``, or ``None`` to leave it out.
    :ivar wait_s: seconds until the request would be admitted.
    :ivar limit: window allowance, if a rate is configured.
    :ivar remaining: starts left in the window.
    :ivar storm: ``True`` when caused by a scheduled 429 storm.
    """

    status: int
    retry_after: int | None
    wait_s: float
    limit: int | None
    remaining: int
    wall: dt.datetime
    storm: bool = False

    def retry_after_header(self) -> list[tuple[bytes, bytes]]:
        """``[("retry-after", n)]`` when a Retry-After is to be sent, else ``[]``."""
        if self.retry_after is None:
            return []
        return [(b"retry-after", str(self.retry_after).encode())]


def anonymous(request: Request) -> str:
    """Key label of a keyless caller: limits then apply per client IP, as upstreams do."""
    return f"ip:{request.client}"


def block_hash(*parts: object) -> str:
    """A deterministic 64-hex-digit hash (block or transaction id) for ``parts``."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def iso_ms(t: float) -> str:
    """``2025-11-28T15:59:51.123Z``: CoinGecko's and NearBlocks' timestamp style."""
    moment = dt.datetime.fromtimestamp(t, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Upstream(ABC):
    """One emulated API. Subclasses set :attr:`name` and implement the abstract methods.

    :attr:`shape` returns the upstream's current :class:`ShapeConfig` (answer variants);
    the app wires it to the live configuration.
    """

    name: ClassVar[UpstreamName]
    #: Whether the real upstream refuses keyless requests (``auth.key_required=None``).
    requires_key: ClassVar[bool] = False

    def __init__(self, data: MarketData) -> None:
        self.data = data
        self.shape: Callable[[], ShapeConfig] = ShapeConfig

    def key_required(self, auth: AuthConfig) -> bool:
        """``auth.key_required``, or the real upstream's rule when it is ``None``."""
        return self.requires_key if auth.key_required is None else auth.key_required

    @abstractmethod
    def route(self, request: Request) -> Route | None:
        """Find the endpoint for ``request`` (path relative to the prefix)."""

    @abstractmethod
    def identify(self, request: Request, auth: AuthConfig) -> str | Response:
        """The caller's key label, or the upstream's auth error when ``auth`` refuses it."""

    @abstractmethod
    def rejection(self, context: RejectionContext) -> Response:
        """The upstream's exact rate-limit answer (body and headers)."""

    def quota_headers(
        self, limit: int, remaining: int, reset_s: float, wall: dt.datetime
    ) -> list[tuple[bytes, bytes]]:
        """``x-ratelimit-limit``, ``-remaining`` and ``-reset`` as this upstream writes them.

        ``reset_s`` is the seconds until the oldest start leaves the window, at UTC
        ``wall``. Default: the reset in whole seconds (rounded up).
        """
        return [
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", str(math.ceil(max(reset_s, 0.0))).encode()),
        ]

    def not_found(self, request: Request) -> Response:
        """Answer for an unknown path."""
        return json_response(404, {"error": "Not Found"})

    def server_error(self, status: int) -> Response:
        """An injected 5xx: a JSON error for 500, a CDN HTML page for 502/503."""
        if status == 500:
            return json_response(500, {"error": "Internal Server Error"})
        return html_response(status, cdn_error_page(status))
