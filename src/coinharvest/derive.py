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

from collections.abc import Iterable, Sequence

from coinharvest.models import Confidence, Observation

__all__ = ["DAYS_PER_YEAR", "DERIVED_SOURCE", "derive"]

DAYS_PER_YEAR = 365
#: The ``source`` of every derived observation.
DERIVED_SOURCE = "derived"
_RANK = {Confidence.HIGH: 2, Confidence.MEDIUM: 1, Confidence.LOW: 0}


def derive(symbol: str, observations: Sequence[Observation]) -> list[Observation]:
    """The derived observations of coin `symbol` (see the module docstring); maybe none."""
    mine = [o for o in observations if o.symbol == symbol and o.value is not None]
    derived: list[Observation] = []
    count = _best(mine, "tx_count_24h")
    annual_count = _scaled(symbol, "annual_tx_count", count)
    if annual_count is not None:
        derived.append(annual_count)
    annual_value = _annual_value(symbol, mine)
    if annual_value is not None:
        derived.append(annual_value)
    if annual_count is not None and annual_value is not None and annual_count.value:
        derived.append(_average(symbol, annual_value, annual_count))
    return derived


def _best(observations: Iterable[Observation], metric: str) -> Observation | None:
    candidates = [o for o in observations if o.metric == metric]
    if not candidates:
        return None
    return max(candidates, key=lambda o: (not o.estimated, _RANK[o.confidence], o.observed_at))


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


def _annual_value(symbol: str, observations: Sequence[Observation]) -> Observation | None:
    onchain = _scaled(symbol, "annual_tx_value_usd", _best(observations, "onchain_volume_24h_usd"))
    if onchain is not None:
        return onchain
    market = _scaled(symbol, "annual_tx_value_usd", _best(observations, "volume_24h_usd"))
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
