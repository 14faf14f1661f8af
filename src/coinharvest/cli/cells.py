"""Cell text shared by every table of the command line: a status in its colour, a UTC time,
seconds, a short age, and the width below which a table takes its narrow layout.

One status→colour map (`_STYLE`) serves them all, so a status looks the same everywhere.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["NARROW", "age", "secs", "status", "when"]

#: Console width (columns) below which tables stack or drop columns so that nothing an
#: operator looks for (a run id, a value, a URL) is cut: 80-column terminals.
NARROW = 120

_STYLE = {
    "ok": "green",
    "completed": "green",
    "failed": "red",
    "partial": "yellow",
    "deferred": "yellow",
    "interrupted": "magenta",
    "running": "cyan",
    "rate_limited": "yellow",
    "retried": "yellow",
}


def status(value: str) -> str:
    """`value` in its status colour (Rich markup); an unknown status as it is."""
    style = _STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value


def when(at: datetime | None) -> str:
    """``2026-12-01 10:00:00`` (UTC as stored), or empty."""
    return at.strftime("%Y-%m-%d %H:%M:%S") if at is not None else ""


def secs(value: float | None) -> str:
    """``1.23 s``, or empty."""
    return f"{value:.2f} s" if value is not None else ""


def age(seconds: float) -> str:
    """A short human age: ``42s``, ``5m``, ``3h``, ``2d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"
