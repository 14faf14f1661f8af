"""Reading the times people type: ``--since 7d``, ``?since=2026-11-01T10:00``.

One function, used by the CLI and the HTTP API alike; a value it cannot read is a
one-line `ConfigError` that each front end turns into its own kind of error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from coinharvest.errors import ConfigError

__all__ = ["SINCE_HELP", "parse_since"]

#: What `parse_since` accepts, for help texts and error messages.
SINCE_HELP = "a date (2026-11-01), a date-time (2026-11-01T10:00) or an age (7d, 12h, 30m)"
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_since(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """``7d``/``12h``/``30m`` ago, or an ISO date/time (UTC unless it says otherwise).

    None stays None ("from the beginning").

    :raises ConfigError: anything else, or an age reaching before year 1.
    """
    if value is None:
        return None
    now = now or datetime.now(UTC)
    if m := _AGE.fullmatch(value):
        try:
            return now - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
        except OverflowError:
            raise ConfigError(f"{value!r} reaches back too far: use {SINCE_HELP}") from None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{value!r}: use {SINCE_HELP}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
