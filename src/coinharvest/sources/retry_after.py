"""How long an upstream asked us to wait (DESIGN §4, reference §6.2).

- `parse_retry_after(headers)`: the wait a 429 (or 503) asked for, in seconds, or None;

and two hints that are not headers of a 429:

- `parse_body_retry_after(text)`: the wait written in a plain-text 429 body (NanoRPCProxy:
  ``Max allowed requests of 5000 reached. Time left: 123sec``);
- `parse_quota_spent(headers)`: a *successful* answer saying the quota is spent
  (CoinGecko: ``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset``): seconds until reset.

How long *we* then wait is the engine's `coinharvest.engine.retry.RetryPolicy`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "MIN_BODY_HINT_S",
    "parse_body_retry_after",
    "parse_quota_spent",
    "parse_rate_headers",
    "parse_retry_after",
]

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
    A date in the past counts as no hint. `headers` must be case-insensitive (an `Answer`'s are).
    """
    retry_after = (headers.get("retry-after") or "").strip()
    if retry_after:
        if (seconds := _seconds(retry_after)) is not None:
            return seconds
        if (when := _parse_http_date(retry_after)) is not None:
            return _positive((when - _reference_time(headers, now)).total_seconds())
    if (ms := headers.get("retry-after-ms")) and (seconds := _seconds(ms.strip())) is not None:
        return seconds / 1000
    if (reset := headers.get("ratelimit-reset")) and (
        seconds := _seconds(reset.strip())
    ) is not None:
        return seconds
    return _x_ratelimit_reset(headers.get("x-ratelimit-reset"), headers, now)


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
    refused until the reset. `headers` must be case-insensitive (an `Answer`'s are).
    """
    remaining = _number((headers.get("x-ratelimit-remaining") or "").strip())
    if remaining is None or remaining > 0:
        return None
    reset = _x_ratelimit_reset(headers.get("x-ratelimit-reset"), headers, now)
    return None if reset is None else _positive(reset)


def parse_rate_headers(
    headers: Mapping[str, str], now: datetime | None = None
) -> tuple[float | None, float | None, float | None] | None:
    """``(limit, remaining, reset_s)`` from ``x-ratelimit-limit`` / ``-remaining`` /
    ``-reset`` (each None when absent or unusable); None when the answer has none of them.

    `reset_s` is read as in `parse_quota_spent` (epoch, seconds or CoinGecko's date).
    """
    limit = _number((headers.get("x-ratelimit-limit") or "").strip())
    remaining = _number((headers.get("x-ratelimit-remaining") or "").strip())
    reset = _x_ratelimit_reset(headers.get("x-ratelimit-reset"), headers, now)
    if limit is None and remaining is None and reset is None:
        return None
    return (
        limit if limit is not None and limit > 0 else None,
        remaining if remaining is not None and remaining >= 0 else None,
        reset,
    )


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


def _x_ratelimit_reset(
    value: str | None, headers: Mapping[str, str], now: datetime | None
) -> float | None:
    """Seconds until ``x-ratelimit-reset`` = `value`; an epoch or a date is measured against
    the server's clock (`_reference_time`), read only then: parsing ``Date`` costs ~20 µs,
    and most answers carry plain seconds."""
    if not value:
        return None
    value = value.strip()
    if (number := _seconds(value)) is not None:
        if number > _EPOCH_THRESHOLD:
            return _positive(number - _reference_time(headers, now).timestamp())
        return number
    if (when := _parse_reset_date(value)) is not None:
        return _positive((when - _reference_time(headers, now)).total_seconds())
    return None


def _positive(seconds: float) -> float | None:
    return seconds if seconds > 0 else None
