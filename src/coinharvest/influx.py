"""Observations as InfluxDB line protocol, for Telegraf (``inputs.exec``/``execd``) and InfluxDB.

One line per point; a point is one (symbol, source, confidence, estimated, observed_at) group
of observations, with one field per metric (one line, cut in two here)::

    coin,confidence=high,estimated=false,source=coingecko,symbol=BTC
    price_usd=91234.5,market_cap_usd=1820000000000.0 1795860000000000000

Contract (docs/OPERATIONS-influx.md says the same for users):

- measurement ``coin`` (`MEASUREMENT`);
- tags, sorted by key: ``confidence`` (high/medium/low), ``estimated`` (true/false),
  ``source``, ``symbol``; an empty tag value is left out, as the spec requires;
- fields: one per metric, named as the metric (``price_usd``, ``block_height``, ...), every
  value a float (``block_height=2379512.0``: exact up to 2**53), so a field never changes
  type between writes; a None, NaN or infinite value is left out, and a point left with no
  field is not written; the same metric twice in a group: the last one wins;
- timestamp: Unix nanoseconds of ``observed_at`` (a naive time is read as UTC), so no
  ``precision`` setting is needed;
- escaping per the spec: backslash, comma, equals sign and space in tag keys, tag values
  and field keys; backslash, comma and space in the measurement. A newline or carriage
  return cannot be written in any of them: `ValueError` naming the value.

`InfluxSink` (through `influx_output`, a `coinharvest.collect.SinkDecorator`) writes each
coin's lines the moment the coin completes, after the wrapped sink stored it, and flushes.
"""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Protocol

from coinharvest.engine.hooks import ResultSink
from coinharvest.errors import OutputError
from coinharvest.logs import get_logger
from coinharvest.models import Coin, CoinResult, JobRecord, RunSummary

__all__ = [
    "MEASUREMENT",
    "InfluxSink",
    "ObservationLike",
    "escape_key",
    "escape_measurement",
    "influx_output",
    "lines",
    "timestamp_ns",
    "write_rows",
]

#: The measurement of every point.
MEASUREMENT = "coin"
#: Rows `write_rows` groups at most at once (a bound on memory for any row order).
MAX_BLOCK = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KEY_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ "})
_MEASUREMENT_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ "})

log = get_logger("influx")


class ObservationLike(Protocol):
    """What a point is made of: a `coinharvest.models.Observation` or a stored row."""

    @property
    def symbol(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def observed_at(self) -> datetime: ...
    @property
    def confidence(self) -> str: ...
    @property
    def estimated(self) -> bool: ...


def _check(text: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(
            f"{what} {text!r} cannot be written as line protocol: newlines are not allowed"
        )
    return text


def escape_key(text: str, what: str = "tag or field") -> str:
    """`text` as a tag key, tag value or field key: ``\\``, ``,``, ``=`` and space escaped.

    :raises ValueError: `text` holds a newline or carriage return (`what` names it).
    """
    return _check(text, what).translate(_KEY_ESCAPES)


def escape_measurement(text: str) -> str:
    """`text` as a measurement name: ``\\``, ``,`` and space escaped.

    :raises ValueError: `text` holds a newline or carriage return.
    """
    return _check(text, "measurement").translate(_MEASUREMENT_ESCAPES)


def timestamp_ns(when: datetime) -> int:
    """`when` as exact Unix nanoseconds (a naive datetime is UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _field_value(value: float | None) -> str | None:
    """The float literal of `value`; None when it cannot be written (None, NaN, ±inf)."""
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return repr(number) if math.isfinite(number) else None


def lines(observations: Iterable[ObservationLike], measurement: str = MEASUREMENT) -> list[str]:
    """The points of `observations`, one line each (no newline), in order of first appearance.

    :raises ValueError: a name that line protocol cannot hold (see the module docstring).
    """
    head = escape_measurement(measurement)
    return [_line(head, key, fields) for key, fields in _groups(observations).items()]


_Key = tuple[str, str, str, bool, int]  # symbol, source, confidence, estimated, ns


def _groups(observations: Iterable[ObservationLike]) -> dict[_Key, dict[str, str]]:
    """Per point, its fields (escaped name: float literal); values that cannot be written
    are left out, and of a metric given twice the last value wins (and comes last)."""
    groups: dict[_Key, dict[str, str]] = {}
    for obs in observations:
        literal = _field_value(obs.value)
        if literal is None:
            continue
        key = (
            obs.symbol,
            obs.source,
            str(obs.confidence),
            obs.estimated,
            timestamp_ns(obs.observed_at),
        )
        fields = groups.setdefault(key, {})
        name = escape_key(obs.metric, "metric")
        fields.pop(name, None)
        fields[name] = literal
    return groups


def _line(head: str, key: _Key, fields: dict[str, str]) -> str:
    symbol, source, confidence, estimated, ns = key
    tags = {
        "confidence": confidence,
        "estimated": "true" if estimated else "false",
        "source": source,
        "symbol": symbol,
    }
    tag_set = "".join(f",{k}={escape_key(v, k)}" for k, v in tags.items() if v)
    field_set = ",".join(f"{name}={literal}" for name, literal in fields.items())
    return f"{head}{tag_set} {field_set} {ns}"


async def write_rows(rows: AsyncIterable[ObservationLike], stream: IO[str]) -> int:
    """Write the points of `rows` to `stream`; return how many values (fields) were written.

    Consecutive rows of one coin are grouped into points together (at most `MAX_BLOCK` rows
    at once), so memory stays bounded however many rows there are.
    """
    written = 0
    block: list[ObservationLike] = []
    async for row in rows:
        if block and (row.symbol != block[-1].symbol or len(block) >= MAX_BLOCK):
            written += _write_block(block, stream)
            block = []
        block.append(row)
    return written + _write_block(block, stream)


def _write_block(block: Sequence[ObservationLike], stream: IO[str]) -> int:
    groups = _groups(block)
    head = escape_measurement(MEASUREMENT)
    stream.write("".join(f"{_line(head, key, fields)}\n" for key, fields in groups.items()))
    return sum(len(fields) for fields in groups.values())


@contextmanager
def influx_output(inner: ResultSink, stream: IO[str] | None = None) -> Iterator[ResultSink]:
    """`inner`, wrapped to write every completed coin's points to `stream` (default: stdout)."""
    sink = InfluxSink(inner, sys.stdout if stream is None else stream)
    yield sink
    if sink.failure is not None:
        raise OutputError(f"line protocol output failed: {sink.failure}")


class InfluxSink:
    """Passes every call to `inner`; writes a coin's points after `inner` had it, and flushes.

    The points are written even when `inner` raised (its error then goes on to the engine,
    which counts it): what was collected still reaches Telegraf. When the reader has gone
    (a broken pipe), one warning is logged and nothing more is written; the run goes on.
    Any other write error (a full disk, EIO) is logged once, stops the output and is kept in
    `failure`: `influx_output` raises `OutputError` when the run is over (the store has every
    coin; the command exits with status 2). A coin whose names line protocol cannot hold is
    skipped with a warning.
    """

    def __init__(self, inner: ResultSink, stream: IO[str]) -> None:
        self.inner = inner
        self.stream = stream
        self.closed = False
        self.failure: OSError | None = None

    async def run_started(
        self, run_id: str, trigger: str, started_at: datetime, coins: Sequence[Coin]
    ) -> None:
        """Pass on."""
        await self.inner.run_started(run_id, trigger, started_at, coins)

    async def jobs_recorded(self, run_id: str, jobs: Sequence[JobRecord]) -> None:
        """Pass on."""
        await self.inner.jobs_recorded(run_id, jobs)

    async def coin_completed(self, run_id: str, result: CoinResult) -> None:
        """Store first (the inner sink), then write the coin's points and flush."""
        try:
            await self.inner.coin_completed(run_id, result)
        finally:
            self._write(result)

    async def run_finished(self, summary: RunSummary) -> None:
        """Pass on."""
        await self.inner.run_finished(summary)

    def _write(self, result: CoinResult) -> None:
        if self.closed:
            return
        try:
            points = lines(result.observations)
        except ValueError as exc:
            log.warning("%s: not written as line protocol: %s", result.symbol, exc)
            return
        if not points:
            return
        try:
            self.stream.write("".join(f"{p}\n" for p in points))
            self.stream.flush()
        except (BrokenPipeError, ValueError) as exc:  # ValueError: the stream was closed
            self.closed = True
            log.warning("line protocol output stopped: %s", exc)
            _silence(self.stream)
        except OSError as exc:
            self.closed, self.failure = True, exc
            log.error("line protocol output failed: %s", exc)
            _silence(self.stream)


def _silence(stream: IO[str]) -> None:
    """Point `stream`'s file descriptor at /dev/null, so the interpreter's last flush of
    what is still buffered does not fail again at exit (Python's advice for SIGPIPE)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a StringIO in tests): nothing to do
        pass
