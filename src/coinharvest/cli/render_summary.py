"""The table `collect`, `demo` and `run` print as a run ends: one row per coin, except that
coins that failed the same way share one row.

A batch request that fails fails every coin in it with the same message; repeating it for
11 coins hid everything else. Coins with the same status and the same error (and the same
number of metrics not collected) are one row: ``BTC, ETH, LTC (3 coins)`` with that error,
the longest time, the most attempts, every source and the total of metrics. Coins without
an error keep a row each. Each source's error is on its own line, and wraps rather than
being cut (the address in it matters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from coinharvest.cli.cells import NARROW, status

if TYPE_CHECKING:
    from coinharvest.models import CoinResult, RunSummary

__all__ = ["SUMMARY_ROWS", "summary_table"]

#: Most coin rows `summary_table` prints; a larger run shows its problems first, then a count.
SUMMARY_ROWS = 50
_WIDE = ("Coin", "Status", "Time", "Attempts", "Sources", "Metrics", "Error")
_NARROW = ("Coin", "Status", "Sources", "Error")
#: Most symbols a grouped row names (then ``…`` and the count).
_LISTED = 8


def summary_table(summary: RunSummary, most: int = SUMMARY_ROWS, width: int = 200) -> Table:
    """Per-coin results of one run (coins failing alike grouped), totals in the caption.

    Below `cells.NARROW` columns, four columns: Coin, Status (with time and attempts),
    Sources (with the metric count) and Error, so that errors keep room to be read.

    Up to `most` rows: every coin of a small run; of a larger one, the coins that failed,
    were deferred or lost metrics first, then a last row counting the coins not shown (all
    of them are in ``coinharvest runs show``). A 10,000-coin table took ~10 s to print.
    """
    table = Table(title=f"Run {summary.run_id}: {summary.status.value}", title_justify="left")
    narrow = width < NARROW
    for col in _NARROW if narrow else _WIDE:
        table.add_column(
            col,
            justify="right" if col in {"Time", "Attempts", "Metrics"} else "left",
            overflow="fold",  # an error's URL wraps: never cut
            max_width={"Coin": 18, "Sources": 14}.get(col) if narrow else None,
        )
    results = summary.results
    if len(results) > most:
        results = sorted(results, key=lambda r: r.status.value == "ok" and not r.notes)
    groups = _groups(results)[:most]
    for group in groups:
        table.add_row(*_stacked(_row(group)) if narrow else _row(group))
    if hidden := len(summary.results) - sum(len(g) for g in groups):
        more = f"[dim]… {hidden:,} more coins (coinharvest runs show {summary.run_id})[/]"
        table.add_row(more, *[""] * (len(table.columns) - 1))
    table.caption = _caption(summary)
    return table


def _caption(summary: RunSummary) -> str:
    return (
        f"{summary.coins_ok} ok, {summary.coins_failed} failed, {summary.coins_deferred} deferred "
        f"of {summary.coins_total} in {summary.duration_s:.2f} s · {summary.requests} requests, "
        f"{summary.rate_limited} rate-limited, {summary.retries} retries, "
        f"max {summary.max_in_flight} in flight"
        + (f" · {summary.coins_unsaved} coins NOT STORED" if summary.coins_unsaved else "")
    )


def _groups(results: Sequence[CoinResult]) -> list[list[CoinResult]]:
    """`results` in order, coins with the same status, error and note count in one group
    (at the place of its first coin); coins without an error alone."""
    groups: list[list[CoinResult]] = []
    by_error: dict[tuple[str, str, int], list[CoinResult]] = {}
    for r in results:
        if not r.error:
            groups.append([r])
            continue
        key = (r.status.value, r.error, len(r.notes))
        if key not in by_error:
            by_error[key] = []
            groups.append(by_error[key])
        by_error[key].append(r)
    return groups


def _row(group: Sequence[CoinResult]) -> tuple[str, ...]:
    first = group[0]
    names = [r.symbol for r in group[:_LISTED]] + (["…"] if len(group) > _LISTED else [])
    coins = ", ".join(names)
    sources = dict.fromkeys(s for r in group for s in r.sources)
    return (
        escape(coins + (f" ({len(group):,} coins)" if len(group) > 1 else "")),
        status(first.status.value),
        f"{max(r.duration_s for r in group) * 1000:.0f} ms",
        str(max(r.attempts for r in group)),
        escape(", ".join(sources)),
        str(sum(len(r.observations) for r in group)),
        escape("\n".join(first.errors)) + _not_collected(first.notes, bool(first.errors)),
    )


def _stacked(cells: tuple[str, ...]) -> tuple[str, ...]:
    """The seven cells of `_row` as the four of the narrow layout."""
    coin, state, took, tries, sources, metrics, error = cells
    tried = f"{tries} {'try' if tries == '1' else 'tries'}"
    return coin, f"{state}\n{took}\n{tried}", f"{sources}\n{metrics} metrics", error


def _not_collected(notes: Sequence[str], after_error: bool) -> str:
    """``"2 metrics not collected"`` (dimmed) when a coin's answers dropped some metrics."""
    if not notes:
        return ""
    text = f"{len(notes)} metric{'s' if len(notes) > 1 else ''} not collected (runs show)"
    return ("\n" if after_error else "") + f"[dim]{text}[/]"
