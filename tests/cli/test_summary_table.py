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
        "run-1", "manual", RunStatus.PARTIAL if failed else RunStatus.OK,
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
    assert rows[0].startswith("│ C997 ") and rows[1].startswith("│ C998 ")
    assert "… 990 more coins (coinharvest runs show run-1)" in text
    assert "998 ok, 2 failed, 0 deferred of 1000" in text
