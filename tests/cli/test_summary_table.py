"""`collect`'s summary table: every coin of a small run; a large run's problems, then a count."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from coinharvest.cli.render import summary_table
from coinharvest.models import CoinResult, CoinStatus, RunStatus, RunSummary


def _summary(n: int, failed: set[int]) -> RunSummary:
    results = [
        CoinResult(
            f"C{i}",
            f"Coin {i}",
            CoinStatus.FAILED if i in failed else CoinStatus.OK,
            None,
            0.1,
            1,
            ("coingecko",),
            errors=["coingecko: HTTP 500: boom"] if i in failed else [],
        )
        for i in range(n)
    ]
    return RunSummary(
        "run-1", "manual", RunStatus.PARTIAL if failed else RunStatus.COMPLETED,
        datetime(2026, 1, 1, tzinfo=UTC), 1.0, n, n - len(failed), len(failed), 0, 4, 0, 0, 3,
        results=results,
    )  # fmt: skip


def _text(summary: RunSummary, most: int) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(summary_table(summary, most=most))
    return console.export_text()


def test_a_small_run_shows_every_coin() -> None:
    text = _text(_summary(5, {3}), most=10)
    assert all(f"C{i} " in text for i in range(5))
    assert "more coins" not in text


def test_a_large_run_shows_its_failures_first_then_how_many_are_not_shown() -> None:
    text = _text(_summary(1_000, {997, 998}), most=10)
    rows = [line for line in text.splitlines() if line.startswith("│ C")]
    assert len(rows) == 10
    assert rows[0].startswith("│ C997, C998 (2 coins) ")  # the same error: one row
    assert rows[1].startswith("│ C0 ")
    assert "… 989 more coins (coinharvest runs show run-1)" in text
    assert "998 ok, 2 failed, 0 deferred of 1000" in text


def test_coins_failing_alike_share_one_row() -> None:
    text = _text(_summary(11, {1, 2, 3, 5, 8}), most=50)
    assert text.count("coingecko: HTTP 500: boom") == 1
    assert "C1, C2, C3, C5, C8 (5 coins)" in text
    assert all(f"│ C{i} " in text for i in (0, 4, 6, 7, 9, 10))


def test_a_large_group_names_its_first_coins_and_counts_them() -> None:
    text = _text(_summary(30, set(range(20))), most=50)
    assert "C0, C1, C2, C3, C4, C5, C6, C7, … (20 coins)" in text


def test_at_80_columns_errors_keep_room_and_nothing_is_cut() -> None:
    summary = _summary(11, {1, 2, 3})
    url = "coingecko: ConnectError: GET https://api.coingecko.com/api/v3/coins/markets: refused"
    for r in summary.results:
        if r.errors:
            r.errors[:] = [url]
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(summary_table(summary, width=80))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    assert "│ C1, C2, C3 (3 " in text  # the cell wraps before "coins)"
    assert "1 try " in text
    error = "".join(line.split("│")[4].strip() for line in text.splitlines() if "│" in line)
    assert url.replace(" ", "") in error.replace(" ", "")  # wrapped, whole
