"""How a source reaches its upstream: base URL, key, timeout, and a transport seam for tests.

The registry builds one `HttpOptions` per source from the settings and hands it to
``Source.from_settings``; `HttpSource` turns it into its HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coinharvest.sources.wire import Transport

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_TIMEOUT_S", "HttpOptions"]

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """How a source reaches its upstream; None fields mean "the source's default".

    :ivar base_url: root URL (``<SRC>_BASE_URL``, or the emulator's for ``demo``).
    :ivar api_key: ``<SRC>_API_KEY``; never shown in a repr.
    :ivar timeout_s: timeout of one request (``HTTP_TIMEOUT_SECONDS``).
    :ivar transport: how requests are sent (None: a new `AiohttpTransport` per source;
        `HandlerTransport` in tests without a network, or one `AiohttpTransport` shared by
        several sources).
    :ivar max_body_bytes: the largest answer accepted, decompressed (``MAX_RESPONSE_BYTES``).
    """

    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    transport: Transport | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
