"""Observations as InfluxDB line protocol (coinharvest.influx): escaping, grouping, values,
timestamps, the streaming sink, and a real collection through the emulator, every line read
back by a strict parser of the grammar (tests/influxkit.py)."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from influxkit import parse, parse_line

from coinharvest import influx
from coinharvest.config import load_settings
from coinharvest.demo import run_demo
from coinharvest.engine.hooks import MemorySink
from coinharvest.errors import OutputError
from coinharvest.influx import InfluxSink, escape_key, escape_measurement, lines, timestamp_ns
from coinharvest.models import (
    Coin,
    CoinResult,
    CoinStatus,
    Confidence,
    JobRecord,
    Observation,
    RunSummary,
)

T = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
T_NS = 1_795_860_000_123_456_000


def obs(
    metric: str = "price_usd",
    value: float | None = 1.5,
    *,
    symbol: str = "BTC",
    source: str = "coingecko",
    at: datetime = T,
    confidence: Confidence = Confidence.HIGH,
    estimated: bool = False,
) -> Observation:
    return Observation(symbol, source, metric, value, at, confidence, estimated)


# --------------------------------------------------------------------------- escaping


@pytest.mark.parametrize(
    ("raw", "key", "measurement"),
    [
        ("plain", "plain", "plain"),
        ("a b", r"a\ b", r"a\ b"),
        ("a,b", r"a\,b", r"a\,b"),
        ("a=b", r"a\=b", "a=b"),  # `=` needs no escape in a measurement
        ("a\\b", r"a\\b", r"a\\b"),
        ("end\\", "end\\\\", "end\\\\"),  # a trailing backslash would escape the separator
        ('q"uote', 'q"uote', 'q"uote'),  # quotes are part of a name, unescaped
        ("🍭 x", r"🍭\ x", r"🍭\ x"),
    ],
)
def test_escaping_follows_the_spec(raw: str, key: str, measurement: str) -> None:
    assert escape_key(raw) == key
    assert escape_measurement(raw) == measurement


@pytest.mark.parametrize("bad", ["a\nb", "a\rb"])
def test_a_newline_cannot_be_written_and_the_error_names_it(bad: str) -> None:
    with pytest.raises(ValueError, match=r"^metric 'a\\[nr]b' cannot be written as line"):
        lines([obs(metric=bad)])
    with pytest.raises(ValueError, match=r"^symbol 'a\\[nr]b' cannot"):
        lines([obs(symbol=bad)])


def test_hostile_names_survive_a_round_trip() -> None:
    names = {"symbol": "A B,C", "source": "my=src\\", "metric": 'x=y z,"w"\\'}
    [line] = lines([obs(names["metric"], 2.5, symbol=names["symbol"], source=names["source"])])
    point = parse_line(line)
    assert point.tags["symbol"] == names["symbol"]
    assert point.tags["source"] == names["source"]
    assert point.fields == {names["metric"]: 2.5}


# --------------------------------------------------------------------------- points


def test_one_line_per_group_with_sorted_tags_float_fields_and_ns_timestamp() -> None:
    text = lines([obs("price_usd", 91234.5), obs("block_height", 2379512.0)])
    assert text == [
        "coin,confidence=high,estimated=false,source=coingecko,symbol=BTC "
        f"price_usd=91234.5,block_height=2379512.0 {T_NS}"
    ]


def test_groups_split_by_source_confidence_estimated_and_time_in_first_seen_order() -> None:
    later = T + timedelta(seconds=1)
    points = [
        parse_line(line)
        for line in lines(
            [
                obs("a", 1.0),
                obs("b", 2.0, source="3xpl"),
                obs("c", 3.0, confidence=Confidence.LOW, estimated=True),
                obs("d", 4.0, at=later),
                obs("e", 5.0),  # joins the first group
            ]
        )
    ]
    assert [(p.tags["source"], p.tags["confidence"], p.tags["estimated"]) for p in points] == [
        ("coingecko", "high", "false"),
        ("3xpl", "high", "false"),
        ("coingecko", "low", "true"),
        ("coingecko", "high", "false"),
    ]
    assert points[0].fields == {"a": 1.0, "e": 5.0}
    assert points[3].ns == T_NS + 1_000_000_000


def test_values_none_nan_and_inf_are_left_out_and_an_empty_point_is_not_written() -> None:
    text = lines([obs("a", None), obs("b", float("nan")), obs("c", float("inf")), obs("d", 0.0)])
    assert [parse_line(line).fields for line in text] == [{"d": 0.0}]
    assert lines([obs("a", None), obs("b", float("-inf"))]) == []
    assert lines([]) == []


def test_the_last_value_of_a_metric_wins() -> None:
    [line] = lines([obs("a", 1.0), obs("b", 2.0), obs("a", 3.0)])
    assert " b=2.0,a=3.0 " in line


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (1e20, "1e+20"),
        (5e-324, "5e-324"),
        (-0.5, "-0.5"),
        (7, "7.0"),
        (2.0**53, "9007199254740992.0"),
    ],
)
def test_every_value_is_a_float_literal_that_reads_back_exactly(value: float, literal: str) -> None:
    [line] = lines([obs("v", value)])
    assert f" v={literal} " in line
    assert parse_line(line).fields["v"] == float(value)


def test_timestamps_are_exact_unix_nanoseconds() -> None:
    assert timestamp_ns(T) == T_NS
    assert timestamp_ns(T.replace(tzinfo=None)) == T_NS  # naive = UTC
    assert timestamp_ns(T.astimezone(timezone(timedelta(hours=-5)))) == T_NS
    assert timestamp_ns(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert timestamp_ns(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1000


# --------------------------------------------------------------------------- export rows


async def _aiter(items: Sequence[Observation]) -> AsyncIterator[Observation]:
    for item in items:
        yield item


async def test_write_rows_groups_each_coin_and_counts_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(influx, "MAX_BLOCK", 2)  # a coin cut across blocks still comes out whole
    rows = [
        obs("a", 1.0),
        obs("b", 2.0),
        obs("c", None),
        obs("d", 4.0),
        obs("a", 9.0, symbol="ETH"),
    ]
    stream = io.StringIO()
    assert await influx.write_rows(_aiter(rows), stream) == 4
    points = parse(stream.getvalue())
    merged: dict[tuple[str, int], dict[str, float]] = {}
    for p in points:
        merged.setdefault((p.tags["symbol"], p.ns), {}).update(p.fields)
    assert merged == {("BTC", T_NS): {"a": 1.0, "b": 2.0, "d": 4.0}, ("ETH", T_NS): {"a": 9.0}}
    empty = io.StringIO()
    assert await influx.write_rows(_aiter([]), empty) == 0
    assert empty.getvalue() == ""


async def test_write_rows_counts_the_values_it_wrote() -> None:
    stream = io.StringIO()
    rows = [obs("a", 1.0), obs("a", 2.0), obs("b", None)]  # `a` twice: the last one is written
    assert await influx.write_rows(_aiter(rows), stream) == 1
    assert [p.fields for p in parse(stream.getvalue())] == [{"a": 2.0}]


# --------------------------------------------------------------------------- the sink


class RecordingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushed_at: list[int] = []  # the written length at each flush

    def flush(self) -> None:
        self.flushed_at.append(len(self.getvalue()))


class Inner(MemorySink):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.calls: list[str] = []

    async def jobs_recorded(self, run_id: str, jobs: Sequence[JobRecord]) -> None:
        self.calls.append("jobs")

    async def coin_completed(self, run_id: str, result: CoinResult) -> None:
        self.calls.append(result.symbol)
        if self.fail:
            raise RuntimeError("disk full")

    async def run_finished(self, summary: RunSummary) -> None:
        self.calls.append("finished")


def coin_result(symbol: str, *observations: Observation) -> CoinResult:
    return CoinResult(symbol, symbol, CoinStatus.OK, T, 0.1, 1, ("coingecko",), list(observations))


async def test_the_sink_stores_first_then_writes_and_flushes_each_coin() -> None:
    inner, stream = Inner(), RecordingStream()
    sink = InfluxSink(inner, stream)
    coins = [Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"}, (("coingecko",),))]
    await sink.run_started("r1", "manual", T, coins)
    await sink.jobs_recorded("r1", [])
    await sink.coin_completed("r1", coin_result("BTC", obs("price_usd", 1.0)))
    assert inner.calls == ["jobs", "BTC"] and stream.flushed_at == [len(stream.getvalue())]
    await sink.coin_completed("r1", coin_result("ETH", obs("price_usd", 2.0, symbol="ETH")))
    await sink.coin_completed("r1", coin_result("XNO"))  # nothing collected: nothing written
    assert [p.tags["symbol"] for p in parse(stream.getvalue())] == ["BTC", "ETH"]
    assert len(stream.flushed_at) == 2 and stream.flushed_at[-1] == len(stream.getvalue())
    assert inner.started == [("r1", "manual", T, 1)]


async def test_values_reach_the_stream_even_when_the_store_fails() -> None:
    stream = RecordingStream()
    sink = InfluxSink(Inner(fail=True), stream)
    with pytest.raises(RuntimeError, match="disk full"):  # the engine counts it
        await sink.coin_completed("r1", coin_result("BTC", obs("price_usd", 1.0)))
    assert [p.tags["symbol"] for p in parse(stream.getvalue())] == ["BTC"]


async def test_a_broken_pipe_stops_the_output_once_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    inner = Inner()
    sink = InfluxSink(inner, Broken())
    with caplog.at_level(logging.WARNING, logger="coinharvest.influx"):
        for symbol in ("BTC", "ETH"):
            await sink.coin_completed("r1", coin_result(symbol, obs(symbol=symbol)))
    assert sink.closed and inner.calls == ["BTC", "ETH"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "coinharvest.influx"]
    assert warnings == ["line protocol output stopped: [Errno 32] Broken pipe"]


async def test_a_full_disk_fails_the_command_after_the_run_not_the_store() -> None:
    """ENOSPC/EIO are not a reader that went away: the store still gets every coin, the
    error is kept and raised as `OutputError` when the run is over (exit status 2; found by
    review: `demo --output influx >/dev/full` blamed the store 11 times and exited 0)."""

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    inner = Inner()
    full = pytest.raises(OutputError, match="No space left on device")
    with full, influx.influx_output(inner, Full()) as sink:
        for symbol in ("BTC", "ETH"):
            await sink.coin_completed("r1", coin_result(symbol, obs(symbol=symbol)))
    assert inner.calls == ["BTC", "ETH"]


# --------------------------------------------------------------------------- real data


async def test_a_real_collection_through_the_emulator_is_valid_line_protocol() -> None:
    from coinharvest.coins import load_coins

    settings = load_settings({}, env_file=None)
    coins = load_coins(settings.coins_file)
    memory = MemorySink()
    stream = io.StringIO()
    with influx.influx_output(memory, stream) as sink:
        result = await run_demo(settings, coins, sink=sink)
    assert result.summary.coins_ok == len(coins) == 11
    points = parse(stream.getvalue())
    collected = [o for _, r in memory.results for o in r.observations if o.value is not None]
    assert sum(len(p.fields) for p in points) == len(collected) > 50
    by_key = {
        (p.tags["symbol"], p.tags["source"], m, p.ns): v
        for p in points
        for m, v in p.fields.items()
    }
    for o in collected:
        assert by_key[(o.symbol, o.source, o.metric, timestamp_ns(o.observed_at))] == o.value
    assert _contiguous([p.tags["symbol"] for p in points]) == _order(memory)
    assert {p.measurement for p in points} == {"coin"}
    assert {p.tags["confidence"] for p in points} <= {"high", "medium", "low"}


def _contiguous(symbols: list[str]) -> list[str]:
    """`symbols` with runs collapsed; a symbol appearing in two runs fails."""
    runs = [s for i, s in enumerate(symbols) if i == 0 or symbols[i - 1] != s]
    assert len(runs) == len(set(runs)), f"a coin's lines are split: {runs}"
    return runs


def _order(memory: MemorySink) -> list[str]:
    """The coins that had a value, in completion order."""
    return [r.symbol for _, r in memory.results if any(o.value is not None for o in r.observations)]
