"""What a metric's number means, and how a person reads it: one kind per metric.

Contract
--------
`kind_of(metric)` gives a metric's `Kind`: from `METRIC_KINDS` (every built-in and derived
metric), else from its name's suffix (``_usd`` money, ``_pct`` percentage, ``_s`` duration,
``_count`` / ``_height`` / ``_total`` count), else `Kind.NUMBER`.

`show(metric, value, exact=False)` is the text of a value in a table; JSON output never uses
it (it keeps the raw number). It never uses scientific notation, and it never hides a
difference that matters for a kind:

=============  ==========================================  ================================
kind           table (``exact=False``)                     ``exact=True`` (e.g. history)
=============  ==========================================  ================================
COUNT          ``2,396,537`` (exact, thousands separators; a fractional count: 2 decimals)
USD_PRICE      ``$97,412.35``; under $1, 4 significant digits: ``$0.00001234``, ``$0.50``
USD_AMOUNT     ``$1.89T``, ``$412.5M``, ``$53.21B``,        ``$1,887,520,000,000`` (whole
               ``$912,345``; under $1,000 like a price      dollars; under $1,000 a price)
DURATION       ``45 s``, ``2.4 s``, ``7 min``, ``6 min 02 s`` (under 10 min), ``17 min``,
               ``1 h 05 min``, ``2 d 03 h``
PERCENT        ``+0.51 %``, ``-3.20 %`` (a change: always signed, 2 decimals)
NUMBER         6 significant digits, at least the integer part: ``19,957,318``, ``4.5``,
               ``0.000123``
=============  ==========================================  ================================

None shows as an empty string; NaN and infinities as ``nan`` / ``inf``.
"""

from __future__ import annotations

import math
from enum import StrEnum

__all__ = ["METRIC_KINDS", "Kind", "duration", "kind_of", "show"]


class Kind(StrEnum):
    """What a metric's value is."""

    COUNT = "count"
    USD_PRICE = "usd_price"
    USD_AMOUNT = "usd_amount"
    DURATION = "duration"
    PERCENT = "percent"
    NUMBER = "number"


#: Every metric the built-in sources and `coinharvest.derive` produce. The dashboard mirrors
#: this table (keep them in step).
METRIC_KINDS: dict[str, Kind] = {
    "block_height": Kind.COUNT,
    "block_count": Kind.COUNT,
    "cemented_count": Kind.COUNT,
    "unchecked_count": Kind.COUNT,
    "tx_count_24h": Kind.COUNT,
    "annual_tx_count": Kind.COUNT,
    "tx_total": Kind.COUNT,
    "events_24h": Kind.COUNT,
    "mempool_events": Kind.COUNT,
    "mempool_tx": Kind.COUNT,
    "nodes_online": Kind.COUNT,
    "price_usd": Kind.USD_PRICE,
    "avg_tx_value_usd": Kind.USD_PRICE,
    "market_cap_usd": Kind.USD_AMOUNT,
    "volume_24h_usd": Kind.USD_AMOUNT,
    "onchain_volume_24h_usd": Kind.USD_AMOUNT,
    "annual_tx_value_usd": Kind.USD_AMOUNT,
    "block_age_s": Kind.DURATION,
    "avg_block_time_s": Kind.DURATION,
    "price_change_24h_pct": Kind.PERCENT,
    "circulating_supply": Kind.NUMBER,
    "onchain_volume_24h": Kind.NUMBER,
    "tps": Kind.NUMBER,
}

_SUFFIXES = (
    ("_usd", Kind.USD_AMOUNT),
    ("_pct", Kind.PERCENT),
    ("_s", Kind.DURATION),
    ("_count", Kind.COUNT),
    ("_height", Kind.COUNT),
    ("_total", Kind.COUNT),
)
_LARGE = ((1e12, "T"), (1e9, "B"), (1e6, "M"))


def kind_of(metric: str) -> Kind:
    """`metric`'s kind: the table, else its name's suffix, else `Kind.NUMBER`."""
    known = METRIC_KINDS.get(metric)
    if known is not None:
        return known
    return next((kind for end, kind in _SUFFIXES if metric.endswith(end)), Kind.NUMBER)


def show(metric: str, value: float | None, *, exact: bool = False) -> str:
    """`value` of `metric` as a table shows it (module table); `exact` for money in full."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    kind = kind_of(metric)
    if kind is Kind.COUNT:
        return f"{round(value):,}" if value == round(value) else f"{value:,.2f}"
    if kind is Kind.USD_PRICE:
        return _money(value, _price(abs(value)))
    if kind is Kind.USD_AMOUNT:
        return _money(value, _amount(abs(value), exact))
    if kind is Kind.DURATION:
        return duration(value)
    if kind is Kind.PERCENT:
        return f"{value:+,.2f} %"
    return _significant(value, 6)


def _money(value: float, digits: str) -> str:
    return ("-$" if value < 0 else "$") + digits


def _price(v: float) -> str:
    if v >= 0.995 or v == 0:  # 0.995 and up round to $1.00: cents, not 4 digits
        return f"{v:,.2f}"
    text = _significant(v, 4)  # at least cents: 0.5 -> 0.50
    return text + "0" * max(0, 4 - len(text))


def _amount(v: float, exact: bool) -> str:
    if v < 1000:
        return _price(v)
    if not exact:
        for i, (size, suffix) in enumerate(_LARGE):
            if v >= size:
                mantissa = v / size
                text = f"{mantissa:,.{2 if round(mantissa, 2) < 100 else 1}f}"
                if float(text.replace(",", "")) >= 1000 and i > 0:  # 999.96M -> 1.00B
                    bigger, big_suffix = _LARGE[i - 1]
                    return f"{v / bigger:,.2f}{big_suffix}"
                return f"{text}{suffix}"
    return f"{v:,.0f}"


def _significant(value: float, digits: int) -> str:
    """`value` in fixed point with `digits` significant digits (at least its integer part),
    thousands separators, no trailing zeros."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(digits - 1 - magnitude, 0)
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def duration(seconds: float) -> str:
    """``45 s``, ``2.4 s``, ``6 min 02 s``, ``17 min``, ``1 h 05 min``, ``2 d 03 h``."""
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s < 10:
        return f"{sign}{_significant(s, 2)} s"
    whole = round(s)
    if whole < 60:
        return f"{sign}{whole} s"
    if whole < 600:
        rest = f" {whole % 60:02d} s" if whole % 60 else ""
        return f"{sign}{whole // 60} min{rest}"
    if whole < 3600:
        return f"{sign}{round(s / 60)} min"
    minutes = round(s / 60)
    if minutes < 24 * 60:
        return f"{sign}{minutes // 60} h {minutes % 60:02d} min"
    hours = round(s / 3600)
    return f"{sign}{hours // 24} d {hours % 24:02d} h"
