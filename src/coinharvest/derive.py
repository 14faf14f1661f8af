"""Derived metrics of one coin, computed when the coin completes (DESIGN §6).

`derive(symbol, observations)` is pure: it looks at a coin's observations from every source
and returns the **new** observations only (source ``"derived"``); the caller stores both.

=======================  ==================================================================
metric                   how
=======================  ==================================================================
``annual_tx_count``      best ``tx_count_24h`` × 365
``annual_tx_value_usd``  on-chain value where a source gives it (``onchain_volume_24h_usd``
                         × 365); else market volume ``volume_24h_usd`` × 365, marked
                         ``estimated=True`` with `Confidence.LOW`
``avg_tx_value_usd``     ``annual_tx_value_usd`` / ``annual_tx_count`` (count > 0)
=======================  ==================================================================

Confidence: a derived value is as trustworthy as its weakest input. An on-chain count from
the chain's primary source is `Confidence.HIGH`; from a fallback source `Confidence.MEDIUM`
(the engine marks those); anything estimated — market volume standing in for on-chain value,
or a count a source itself estimated — is at most `Confidence.LOW` and ``estimated=True``.
3xpl's ``events_24h`` are events, not transactions, and are never used as a count.

When several sources give the same input, the best one is used: not estimated first, then
the highest confidence, then the most recent. ``observed_at`` of a derived value is the
latest of its inputs'.

Example::

    derive("DASH", [Observation("DASH", "blockchair", "tx_count_24h", 17423.0, t),
                    Observation("DASH", "coingecko", "volume_24h_usd", 6.1e7, t)])
    # annual_tx_count 6359395 (high), annual_tx_value_usd 2.2e10 (low, estimated),
    # avg_tx_value_usd 3514.6 (low, estimated)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from coinharvest.models import Confidence, Observation

__all__ = ["DAYS_PER_YEAR", "DERIVED_SOURCE", "derive"]

DAYS_PER_YEAR = 365
#: The ``source`` of every derived observation.
DERIVED_SOURCE = "derived"
_RANK = {Confidence.HIGH: 2, Confidence.MEDIUM: 1, Confidence.LOW: 0}


def derive(symbol: str, observations: Sequence[Observation]) -> list[Observation]:
    """The derived observations of coin `symbol` (see the module docstring); maybe none."""
    best = _best_inputs(symbol, observations)
    derived: list[Observation] = []
    annual_count = _scaled(symbol, "annual_tx_count", best.get("tx_count_24h"))
    if annual_count is not None:
        derived.append(annual_count)
    annual_value = _annual_value(symbol, best)
    if annual_value is not None:
        derived.append(annual_value)
    if annual_count is not None and annual_value is not None and annual_count.value:
        derived.append(_average(symbol, annual_value, annual_count))
    return derived


#: The metrics derivations read.
_INPUTS = frozenset({"tx_count_24h", "onchain_volume_24h_usd", "volume_24h_usd"})


def _best_inputs(symbol: str, observations: Iterable[Observation]) -> dict[str, Observation]:
    """The best observation of each input metric about `symbol` that has a value: not
    estimated first, then the highest confidence, then the most recent (the first of equals).
    One pass: a coin has many observations and only a few are inputs."""
    best: dict[str, Observation] = {}
    for o in observations:
        if o.metric not in _INPUTS or o.symbol != symbol or o.value is None:
            continue
        held = best.get(o.metric)
        if held is None or _rank(o) > _rank(held):
            best[o.metric] = o
    return best


def _rank(o: Observation) -> tuple[bool, int, datetime]:
    return (not o.estimated, _RANK[o.confidence], o.observed_at)


def _scaled(symbol: str, metric: str, daily: Observation | None) -> Observation | None:
    if daily is None or daily.value is None:
        return None
    return Observation(
        symbol,
        DERIVED_SOURCE,
        metric,
        daily.value * DAYS_PER_YEAR,
        daily.observed_at,
        Confidence.LOW if daily.estimated else daily.confidence,
        daily.estimated,
    )


def _annual_value(symbol: str, best: Mapping[str, Observation]) -> Observation | None:
    onchain = _scaled(symbol, "annual_tx_value_usd", best.get("onchain_volume_24h_usd"))
    if onchain is not None:
        return onchain
    market = _scaled(symbol, "annual_tx_value_usd", best.get("volume_24h_usd"))
    if market is None:
        return None
    return _weakened(market, Confidence.LOW, estimated=True)


def _average(symbol: str, value: Observation, count: Observation) -> Observation:
    assert value.value is not None and count.value is not None
    weakest = min(value.confidence, count.confidence, key=lambda c: _RANK[c])
    return Observation(
        symbol,
        DERIVED_SOURCE,
        "avg_tx_value_usd",
        value.value / count.value,
        max(value.observed_at, count.observed_at),
        weakest,
        value.estimated or count.estimated,
    )


def _weakened(obs: Observation, confidence: Confidence, *, estimated: bool) -> Observation:
    """`obs` with confidence at most `confidence` and the estimated flag set if asked."""
    lowest = min(obs.confidence, confidence, key=lambda c: _RANK[c])
    return Observation(
        obs.symbol,
        obs.source,
        obs.metric,
        obs.value,
        obs.observed_at,
        lowest,
        obs.estimated or estimated,
    )
