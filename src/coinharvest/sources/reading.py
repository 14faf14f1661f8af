"""One coin's metrics read out of one part of an upstream's answer, field by field (DESIGN §11).

Real answers differ from the documentation and from chain to chain: Blockchair's Ethereum
stats have no ``volume_24h`` but a string ``volume_24h_approximate`` in wei, Monero's have no
``transactions_24h``, a pre-V19 Nano node sends no ``cemented``, CoinGecko answers ``0`` for a
market cap it doesn't know. So a source reads the object that describes a coin (a market
item, one chain's stats) through a `Reading`: each `Reading.number` call takes one field, and
a field that is missing, null, a value the source uses for "unknown", or not a number drops
**that metric only**, with a note saying why. The rest of the coin, and of the batch, go on.

Numbers may come as JSON numbers or as numeric strings (``"205123456"``, ``"6.3e24"``);
``decimals`` scales base units (wei, satoshi, raw) to whole coins without losing precision
before the division. Non-finite numbers (``NaN``, ``Infinity``) are not numbers here.

A note quotes an unusable value cut to 40 characters (with ``...``); the value may be the API
key echoed by the upstream, so the engine passes every note through `Source.redact`.

Example::

    reading = Reading("blockchair", "/stats.data.ethereum.data")
    reading.number(stats, "transactions_24h", "tx_count_24h")
    reading.number(stats, "volume_24h_approximate", "onchain_volume_24h",
                   decimals=18, estimated=True)
    reading.answer("ETH", now)   # CoinAnswer(observations=[...], notes=[...])
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import MAX_EMAX, MIN_EMIN, Decimal, InvalidOperation, localcontext
from typing import Any

from coinharvest.models import CoinAnswer, Confidence, Observation
from coinharvest.sources.fields import shown

__all__ = ["Reading", "decimal_sum", "to_number"]


def to_number(value: Any) -> Decimal | None:
    """`value` as a finite Decimal if it is a JSON number or a numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def _as_float(number: Decimal, decimals: int = 0) -> float | None:
    """``number × 10**-decimals`` as a finite float, or None if it is out of float's range."""
    try:
        with localcontext() as context:
            context.Emax = MAX_EMAX
            context.Emin = MIN_EMIN
            scaled = number.scaleb(-decimals) if decimals else number
        value = float(scaled)
    except ArithmeticError:
        return None
    return value if math.isfinite(value) else None


def decimal_sum(numbers: Iterable[Decimal]) -> float | None:
    """The sum as a finite float, or None if it is out of float's range."""
    try:
        with localcontext() as context:
            context.Emax = MAX_EMAX
            context.Emin = MIN_EMIN
            total = sum(numbers, Decimal(0))
    except ArithmeticError:
        return None
    return _as_float(total)


@dataclass(frozen=True, slots=True)
class _Value:
    metric: str
    value: float
    confidence: Confidence
    estimated: bool


class Reading:
    """The metrics read so far from one object of one answer, and the notes on those dropped.

    :param source: the source's name, first word of every note.
    :param where: where the object is in the answer (kept for the caller's own errors).
    """

    __slots__ = ("_values", "notes", "source", "where")

    def __init__(self, source: str, where: str) -> None:
        self.source = source
        self.where = where
        self._values: list[_Value] = []
        #: One line per dropped metric: ``"<source>: <metric>: <why>"``.
        self.notes: list[str] = []

    def number(
        self,
        obj: Mapping[str, Any],
        key: str,
        metric: str,
        *,
        unknown: Collection[float] = (),
        decimals: int = 0,
        estimated: bool = False,
        confidence: Confidence = Confidence.HIGH,
    ) -> float | None:
        """Take ``obj[key]`` as `metric`; return its value, or None if dropped (with a note).

        :param unknown: values that mean "not known" at this source (CoinGecko's 0).
        :param decimals: the field is in base units of ``10**-decimals`` coins.
        :param estimated: the upstream marks the value approximate: stored with
            ``estimated=True`` and at most `Confidence.LOW`.
        """
        if key not in obj:
            self.drop(metric, f"not in the answer ({key})")
            return None
        raw = obj[key]
        if raw is None:
            self.drop(metric, f"null ({key})")
            return None
        number = to_number(raw)
        if number is None:
            self.drop(metric, f"{key} is not a finite number: {shown(raw)}")
            return None
        if number in unknown:
            self.drop(metric, f"{key} = {shown(raw)} means unknown at {self.source}")
            return None
        value = _as_float(number, decimals)
        if value is None:
            self.drop(metric, f"{key} is out of range: {shown(raw)}")
            return None
        if estimated:
            confidence = Confidence.LOW
        self.put(metric, value, confidence=confidence, estimated=estimated)
        return value

    def put(
        self,
        metric: str,
        value: float,
        *,
        confidence: Confidence = Confidence.HIGH,
        estimated: bool = False,
    ) -> None:
        """Record a value computed by the source itself (e.g. a block's age)."""
        self._values.append(_Value(metric, value, confidence, estimated))

    def drop(self, metric: str, why: str) -> None:
        """Note that `metric` could not be taken, and why."""
        self.notes.append(f"{self.source}: {metric}: {why}")

    def value(self, metric: str) -> float | None:
        """The value read for `metric`, if any."""
        return next((v.value for v in self._values if v.metric == metric), None)

    def confidence_of(self, metric: str) -> Confidence:
        """The confidence recorded for `metric` (`Confidence.HIGH` if it wasn't read)."""
        return next((v.confidence for v in self._values if v.metric == metric), Confidence.HIGH)

    def answer(self, symbol: str, at: datetime) -> CoinAnswer:
        """What was read, as coin `symbol`'s answer observed at `at`."""
        observations = [
            Observation(symbol, self.source, v.metric, v.value, at, v.confidence, v.estimated)
            for v in self._values
        ]
        return CoinAnswer(observations, list(self.notes))
