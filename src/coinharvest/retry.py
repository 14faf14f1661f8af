"""Retry-After parsing and the back-off policy (DESIGN §4, reference §6.2).

Two questions, two functions:

- `parse_retry_after(headers)`: how long did the server ask us to wait? (seconds or None)
- `RetryPolicy`: how long do *we* wait before the next attempt, given the error?

and two hints that are not headers of a 429:

- `parse_body_retry_after(text)`: the wait written in a plain-text 429 body (NanoRPCProxy:
  ``Max allowed requests of 5000 reached. Time left: 123sec``);
- `parse_quota_spent(headers)`: a *successful* answer saying the quota is spent
  (CoinGecko: ``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset``): seconds until reset.

Jitter only ever *adds* to a server's requested wait: shortening it walks straight back
into the limit.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "parse_body_retry_after", "parse_quota_spent", "parse_retry_after"]

_EPOCH_THRESHOLD = 1e9  # x-ratelimit-reset values above this are epoch seconds
_BODY_HINT_MAX = 2000  # characters of a body searched for a hint
_TIME_LEFT = re.compile(r"(?i)\btime\s+left\s*:?\s*(\d+(?:\.\d+)?)\s*(?:s|secs?|seconds?)\b")


def _parse_http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_reset_date(value: str) -> datetime | None:
    """CoinGecko sends x-ratelimit-reset as ``2025-07-25 14:54:00 +0000``."""
    for fmt in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return _parse_http_date(value)


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait, or None when it gave no usable hint.

    Order (RFC 9110 §10.2.3, then vendor headers): ``Retry-After`` as seconds (decimals
    accepted) or as an HTTP-date measured against the response's own ``Date`` header (which
    removes clock skew), else ``retry-after-ms``, ``RateLimit-Reset`` (seconds),
    ``X-RateLimit-Reset`` (epoch if > 1e9, a date string such as CoinGecko's, else seconds).
    A date in the past counts as no hint. `headers` must be case-insensitive (httpx's are).
    """
    ref = _reference_time(headers, now)
    retry_after = (headers.get("retry-after") or "").strip()
    if retry_after:
        if (seconds := _seconds(retry_after)) is not None:
            return seconds
        if (when := _parse_http_date(retry_after)) is not None:
            return _positive((when - ref).total_seconds())
    if (ms := headers.get("retry-after-ms")) and (seconds := _seconds(ms.strip())) is not None:
        return seconds / 1000
    if (reset := headers.get("ratelimit-reset")) and (
        seconds := _seconds(reset.strip())
    ) is not None:
        return seconds
    return _x_ratelimit_reset(headers.get("x-ratelimit-reset"), ref)


#: Shortest wait read from a body hint (NanoRPCProxy rounds "Time left" to whole seconds).
MIN_BODY_HINT_S = 1.0


def parse_body_retry_after(text: str) -> float | None:
    """Seconds a plain-text limit answer asks us to wait, from ``Time left: N sec``.

    NanoRPCProxy answers 429 with ``Max allowed requests of 5000 reached. Time left: 123sec``
    and no Retry-After; ``N sec``, ``Nsec``, ``Ns`` and ``N seconds`` are all accepted.
    None when the text has no such hint. The proxy rounds N (it can say ``0sec`` with a
    fraction of a second left), so the wait is at least `MIN_BODY_HINT_S`.
    """
    match = _TIME_LEFT.search(text[:_BODY_HINT_MAX])
    return max(MIN_BODY_HINT_S, float(match.group(1))) if match else None


def parse_quota_spent(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds until the quota resets, when an answer says it is spent; else None.

    "Spent" is ``x-ratelimit-remaining`` ≤ 0 together with a usable ``x-ratelimit-reset``
    (epoch seconds, seconds, or a date such as CoinGecko's ``2025-07-25 14:54:00 +0000``,
    measured against the response's ``Date`` header as in `parse_retry_after`). CoinGecko
    sends these on successful answers: the answer is good, but the next request would be
    refused until the reset. `headers` must be case-insensitive (httpx's are).
    """
    remaining = _number((headers.get("x-ratelimit-remaining") or "").strip())
    if remaining is None or remaining > 0:
        return None
    reset = _x_ratelimit_reset(headers.get("x-ratelimit-reset"), _reference_time(headers, now))
    return None if reset is None else _positive(reset)


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _reference_time(headers: Mapping[str, str], now: datetime | None) -> datetime:
    """The server's "now" (its ``Date`` header) if usable, else `now` or the local clock."""
    date_header = headers.get("date")
    if date_header and (server_now := _parse_http_date(date_header)) is not None:
        return server_now
    return now or datetime.now(UTC)


def _x_ratelimit_reset(value: str | None, ref: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if (number := _seconds(value)) is not None:
        if number > _EPOCH_THRESHOLD:
            return _positive(number - ref.timestamp())
        return number
    if (when := _parse_reset_date(value)) is not None:
        return _positive((when - ref).total_seconds())
    return None


def _positive(seconds: float) -> float | None:
    return seconds if seconds > 0 else None


@dataclass(slots=True)
class RetryPolicy:
    """How long to wait before attempt ``attempt + 1`` (attempts are 1-based).

    - rate limited with a hint RA: ``RA + U(0, min(1 s, 0.1·RA))`` (jitter only adds);
    - rate limited without a hint: equal jitter ``U(b/2, b)``, never less than `min_wait_s`;
    - transient error: full jitter ``U(0, b)``;

    where ``b = min(cap_s, base_s · 2^(attempt−1))``.
    """

    base_s: float = 1.0
    cap_s: float = 60.0
    max_attempts: int = 4
    rng: random.Random = field(default_factory=random.Random)

    def ceiling(self, attempt: int) -> float:
        """The exponential ceiling b for `attempt`."""
        return float(min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1)))

    def rate_limited_wait(
        self, attempt: int, retry_after: float | None, min_wait_s: float = 0.0
    ) -> float:
        """Seconds to pause the whole source after a 429."""
        if retry_after is not None:
            return retry_after + self.rng.uniform(0.0, min(1.0, 0.1 * retry_after))
        b = self.ceiling(attempt)
        return max(min_wait_s, self.rng.uniform(b / 2, b))

    def transient_wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retrying a job after a timeout, connection error or 5xx."""
        if retry_after is not None:
            return retry_after + self.rng.uniform(0.0, min(1.0, 0.1 * retry_after))
        return self.rng.uniform(0.0, self.ceiling(attempt))

    def may_retry(self, attempt: int) -> bool:
        """Whether a job that just made attempt `attempt` may make another."""
        return attempt < self.max_attempts
