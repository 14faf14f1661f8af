"""What crosses the wire between a source and its upstream, and the seam that carries it.

`HttpClient` builds a `Request`, hands it to a `Transport` and gets back an `Answer`: status,
headers and the body already read (bounded) and decoded. The real transport is
`coinharvest.sources.transport.AiohttpTransport`; `HandlerTransport` answers from a function
instead of the network (unit tests on a virtual clock, where no socket may be waited on),
the way ``httpx.MockTransport`` did.

Transport contract:

- `Transport.send` makes exactly one attempt (no retries, no redirects followed);
- it reads at most ``limit`` bytes of a 2xx answer's decoded body and raises `BodyTooLarge`
  past it; of any other answer it keeps the first ``min(limit, ERROR_BODY_MAX)`` bytes (all
  an error message needs) and drops the rest; it raises `Undecodable` for a body it cannot
  decode; anything else it raises (connection, timeout, protocol errors) is translated by
  `HttpClient`, the one place where errors become the project's error tree;
- it awaits `coinharvest.sources.sending.about_to_send()` just before the request's headers
  go out, if it can tell when that is (`AiohttpTransport` can; `HandlerTransport` cannot).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "ERROR_BODY_MAX",
    "Answer",
    "BodyTooLarge",
    "HandlerTransport",
    "Request",
    "Transport",
    "Undecodable",
]

#: Bytes of a non-2xx answer kept for its message.
ERROR_BODY_MAX = 64 * 1024
_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)


class BodyTooLarge(Exception):
    """The decoded body passed the limit the caller set (``limit`` bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit} bytes")
        self.limit = limit


class Undecodable(ValueError):
    """The body could not be decoded (an unknown or broken Content-Encoding)."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request: `url` is absolute; `params` are its query; `json` its body, if any."""

    method: str
    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None


@dataclass(frozen=True, slots=True)
class Answer:
    """An upstream's answer, body read and decoded; `headers` are case-insensitive."""

    status: int
    headers: CIMultiDictProxy[str]
    content: bytes = b""
    reason: str = ""

    @classmethod
    def of(
        cls,
        status: int,
        content: bytes = b"",
        headers: Mapping[str, str] | None = None,
        reason: str = "",
    ) -> Answer:
        """An answer built by hand (tests, `HandlerTransport` handlers)."""
        return cls(status, CIMultiDictProxy(CIMultiDict(headers or {})), content, reason)

    @property
    def is_success(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body decoded with its declared charset (UTF-8 if none).

        :raises UnicodeError, LookupError: a wrong or unknown charset.
        """
        found = _CHARSET.search(self.headers.get("content-type", ""))
        return self.content.decode(found.group(1) if found else "utf-8")


class Transport(Protocol):
    """Sends requests for one or more `HttpClient` s (see the module's contract)."""

    async def send(self, request: Request, limit: int) -> Answer:
        """One attempt at `request`; its answer with at most `limit` body bytes."""
        ...

    async def aclose(self) -> None:
        """Release connections (may be called more than once)."""
        ...


#: Answers a request: a function returning an `Answer` (or an awaitable of one).
Handler = Callable[[Request], Answer | Awaitable[Answer]]


class HandlerTransport:
    """A `Transport` that answers from `handler`, with no network (for tests).

    Only the body limits are applied; nothing reports when headers are sent, so a request's
    start stays stamped when it was handed over (`sending.outgoing`).
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def send(self, request: Request, limit: int) -> Answer:
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if not answer.is_success:
            return replace(answer, content=answer.content[: min(limit, ERROR_BODY_MAX)])
        if len(answer.content) > limit:
            raise BodyTooLarge(limit)
        return answer

    async def aclose(self) -> None:
        return None
