"""Logging set-up: DEBUG namespace patterns, line format, idempotence."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from coinharvest import logs
from coinharvest.logs import ROOT_LOGGER, get_logger, setup_logging

NAMESPACES = [
    "scheduler",
    "scheduler:tick",
    "schedulerx",
    "engine",
    "limiter",
    "source:coingecko",
    "source:coingecko:http",
    "source:3xpl",
    "store",
    "cli",
]


@pytest.fixture(autouse=True)
def clean_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what setup_logging does to the process-wide logging state."""
    monkeypatch.setattr(logs, "_active", None)
    yield
    root = logging.getLogger(ROOT_LOGGER)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.propagate = True
    for logger in [root, *logs._coinharvest_loggers()]:
        logger.setLevel(logging.NOTSET)


def debug_enabled() -> set[str]:
    return {ns for ns in NAMESPACES if get_logger(ns).isEnabledFor(logging.DEBUG)}


@pytest.mark.parametrize(
    ("debug", "expected"),
    [
        ("", set()),
        ("scheduler:*", {"scheduler", "scheduler:tick"}),
        ("scheduler", {"scheduler"}),
        ("source:coingecko,limiter", {"source:coingecko", "limiter"}),
        ("source:coingecko, limiter", {"source:coingecko", "limiter"}),
        ("source:coingecko limiter", {"source:coingecko", "limiter"}),
        ("source:*", {"source:coingecko", "source:coingecko:http", "source:3xpl"}),
        ("source:coin*", {"source:coingecko", "source:coingecko:http"}),
        ("*", set(NAMESPACES)),
        ("*,-limiter", set(NAMESPACES) - {"limiter"}),
        (
            "*,-source:*",
            set(NAMESPACES) - {"source:coingecko", "source:coingecko:http", "source:3xpl"},
        ),
        ("scheduler:*,-scheduler:tick", {"scheduler"}),
        ("nothing-matches", set()),
        (",,", set()),
    ],
)
def test_debug_patterns_enable_exactly_the_intended_loggers(debug: str, expected: set[str]) -> None:
    setup_logging(debug, stream=io.StringIO())
    assert debug_enabled() == expected
    info_only = set(NAMESPACES) - expected
    assert all(get_logger(ns).isEnabledFor(logging.INFO) for ns in info_only)


def test_namespaces_map_to_stdlib_loggers() -> None:
    assert get_logger("engine").name == "coinharvest.engine"
    assert get_logger("source:coingecko").name == "coinharvest.source.coingecko"
    assert get_logger("scheduler:tick").parent is get_logger("scheduler")
    assert get_logger("").name == ROOT_LOGGER


def test_loggers_created_before_setup_follow_it() -> None:
    early = get_logger("store")
    setup_logging("store", stream=io.StringIO())
    assert early.isEnabledFor(logging.DEBUG)


def test_module_loggers_created_after_setup_follow_plain_patterns() -> None:
    setup_logging("engine,-limiter,scheduler:*", stream=io.StringIO())
    # What `logging.getLogger(__name__)` in coinharvest/engine.py would do, after set-up.
    assert logging.getLogger("coinharvest.engine").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("coinharvest.scheduler.later").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("coinharvest.limiter").isEnabledFor(logging.DEBUG)


def test_second_call_replaces_the_first() -> None:
    setup_logging("*", stream=io.StringIO())
    stream = io.StringIO()
    setup_logging("limiter", stream=stream)
    assert debug_enabled() == {"limiter"}
    root = logging.getLogger(ROOT_LOGGER)
    assert len(root.handlers) == 1
    get_logger("engine").info("once")
    assert stream.getvalue().count("once") == 1


ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_info_line_is_iso_utc_time_level_namespace_and_message() -> None:
    stream = io.StringIO()
    setup_logging(stream=stream)
    get_logger("engine").info("✅ %s Success in %dms", "ETH", 1500)
    get_logger("engine").debug("hidden")
    # Not a terminal: the seed's line keeps its text, without the emoji.
    assert re.fullmatch(rf"{ISO} INFO engine ETH Success in 1500ms\n", stream.getvalue())


def test_emoji_only_on_a_terminal() -> None:
    stream = _Terminal()
    setup_logging(stream=stream)
    get_logger("engine").info("📊 Collecting %s (%s)...", "Bitcoin", "BTC")
    assert re.fullmatch(rf"{ISO} INFO engine 📊 Collecting Bitcoin \(BTC\)...\n", stream.getvalue())


def test_time_is_utc_with_milliseconds() -> None:
    stream = io.StringIO()
    setup_logging(stream=stream)
    record = logging.LogRecord("coinharvest.cli", logging.INFO, __file__, 1, "x", None, None)
    record.created = 1_780_000_000.25  # 2026-05-28T20:26:40.250Z, whatever the local zone
    logging.getLogger(ROOT_LOGGER).handlers[0].handle(record)
    assert stream.getvalue() == "2026-05-28T20:26:40.250Z INFO cli x\n"


def test_debug_line_shows_the_namespace() -> None:
    stream = io.StringIO()
    setup_logging("scheduler:*", stream=stream)
    get_logger("scheduler:tick").debug("tick %d", 3)
    assert re.fullmatch(rf"{ISO} DEBUG scheduler:tick tick 3\n", stream.getvalue())


def test_warning_line_shows_the_level() -> None:
    stream = io.StringIO()
    setup_logging(stream=stream)
    get_logger("cli").warning("DELAY_BETWEEN_COINS_MS is deprecated")
    assert re.fullmatch(
        rf"{ISO} WARNING cli DELAY_BETWEEN_COINS_MS is deprecated\n", stream.getvalue()
    )


def test_log_level_warning_drops_info_but_debug_patterns_still_win() -> None:
    stream = io.StringIO()
    setup_logging("limiter", stream=stream, level="warning")
    get_logger("engine").info("per-coin line")
    get_logger("limiter").debug("granted")
    get_logger("store").error("disk full")
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "DEBUG limiter granted",
        "ERROR store disk full",
    ]


def test_json_format_is_one_object_per_line() -> None:
    stream = io.StringIO()
    setup_logging(stream=stream, fmt="json")
    get_logger("engine").info("✅ %s Success in %dms", "ETH", 1500)
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("store").exception("write failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(first) == ["ts", "level", "logger", "msg"]
    assert re.fullmatch(ISO, first["ts"])
    assert (first["level"], first["logger"], first["msg"]) == (
        "info",
        "engine",
        "ETH Success in 1500ms",
    )
    assert second["level"] == "error" and second["msg"] == "write failed"
    assert "ValueError: boom" in second["exc"]


def test_writes_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging()
    get_logger("engine").info("Processing 11 coins with max concurrency: 5")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Processing 11 coins with max concurrency: 5" in captured.err


def test_records_do_not_reach_the_root_logger(caplog: pytest.LogCaptureFixture) -> None:
    setup_logging(stream=io.StringIO())
    get_logger("engine").info("not twice")
    assert "not twice" not in caplog.text


def test_stack_info_is_kept_in_both_formats() -> None:
    for fmt in ("text", "json"):
        stream = io.StringIO()
        setup_logging(stream=stream, fmt=fmt)
        get_logger("engine").info("where am I", stack_info=True)
        assert "Stack (most recent call last)" in stream.getvalue(), fmt
        if fmt == "json":
            assert len(stream.getvalue().splitlines()) == 1
