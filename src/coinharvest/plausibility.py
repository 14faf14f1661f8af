"""Which values a metric may take; the engine drops the others before anything is stored.

Every observation a source delivers (built-in or plug-in) passes `screen` once, when its job
ends. A value outside its metric's range is dropped with a note in the run's record, so one
absurd field (a negative supply, a price of 1e308 that would make every derived metric
``Infinity``, and ``latest --json`` invalid JSON) never reaches the store or the derivations.

==========================================  ============================================
metric                                      allowed
==========================================  ============================================
``price_usd``                               > 0 and ≤ 1e9 (no asset trades near $1e9)
``market_cap_usd``, ``volume_24h_usd``,     ≥ 0 and ≤ 1e15 (ten times the world's GDP)
``onchain_volume_24h_usd``
``price_change_24h_pct``                    ≥ -100
supplies, on-chain volumes in coins         ≥ 0 and ≤ 1e21 (the largest supplies are ~1e17)
counts, heights, ages, rates                ≥ 0 and ≤ 1e15
any other metric (plug-ins)                 any finite number
==========================================  ============================================

Every value must be a finite number (not null, not NaN, not ±Infinity).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from coinharvest.models import Observation

__all__ = ["POSITIVE", "RANGES", "problem", "screen"]

_MONEY_MAX = 1e15
_COUNT = (0.0, 1e15)
_AMOUNT = (0.0, 1e21)

#: metric -> (lowest, highest) allowed value, both inclusive (see `POSITIVE`).
RANGES: dict[str, tuple[float, float]] = {
    "price_usd": (0.0, 1e9),
    "market_cap_usd": (0.0, _MONEY_MAX),
    "volume_24h_usd": (0.0, _MONEY_MAX),
    "onchain_volume_24h_usd": (0.0, _MONEY_MAX),
    "annual_tx_value_usd": (0.0, _MONEY_MAX * 365),
    "price_change_24h_pct": (-100.0, math.inf),
    "circulating_supply": _AMOUNT,
    "onchain_volume_24h": _AMOUNT,
    **dict.fromkeys(
        (
            "tx_count_24h",
            "annual_tx_count",
            "avg_tx_value_usd",
            "events_24h",
            "mempool_events",
            "mempool_tx",
            "block_height",
            "block_age_s",
            "block_count",
            "cemented_count",
            "unchecked_count",
            "tx_total",
            "tps",
            "avg_block_time_s",
            "nodes_online",
        ),
        _COUNT,
    ),
}


#: Metrics whose lower bound is exclusive: a price of exactly 0 is not a price.
POSITIVE = frozenset({"price_usd"})


def problem(metric: str, value: float | None) -> str | None:
    """Why `value` is not a plausible `metric`, or None if it is."""
    if value is None:
        return "null"
    if not math.isfinite(value):
        return f"{value!r} is not a finite number"
    low, high = RANGES.get(metric, (-math.inf, math.inf))
    if value < low or (value == low and metric in POSITIVE):
        bound = f"> {low:g}" if metric in POSITIVE else f"≥ {low:g}"
        return f"{value:g} is implausible (must be {bound})"
    if value > high:
        return f"{value:g} is implausible (must be ≤ {high:g})"
    return None


def screen(observations: Iterable[Observation]) -> tuple[list[Observation], list[str]]:
    """The plausible observations, and one note per dropped one (``"<source>: <metric>: …"``)."""
    kept: list[Observation] = []
    notes: list[str] = []
    for obs in observations:
        why = problem(obs.metric, obs.value)
        if why is None:
            kept.append(obs)
        else:
            notes.append(f"{obs.source}: {obs.metric}: {why}")
    return kept, notes
