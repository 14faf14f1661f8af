"""The Rich tables of the command line that show values and settings: latest values, a
metric's history, the verification, the coins and the sources. The runs tables live in
`render_runs`, the end-of-run summary in `render_summary` (re-exported here), shared cell
text in `cells`.

Values are shown by kind (`coinharvest.units`): heights and counts exact, money in dollars,
durations in words. Tables that take the console `width` have a narrow layout under
`cells.NARROW` columns that stacks or drops columns, so that no id, value or URL is cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from coinharvest.cli.cells import NARROW, age, when
from coinharvest.cli.console import out
from coinharvest.cli.render_runs import run_detail_view, runs_table
from coinharvest.cli.render_summary import SUMMARY_ROWS, summary_table
from coinharvest.units import show

if TYPE_CHECKING:  # annotations only: `latest` need not import the engine or httpx
    from coinharvest.models import Coin, SourceLimits
    from coinharvest.sources.base import Source
    from coinharvest.storage.queries import HistoryPoint, LatestValue
    from coinharvest.verify import VerifyRow

__all__ = [
    "SUMMARY_ROWS",
    "age",
    "coins_table",
    "history_table",
    "latest_table",
    "run_detail_view",
    "runs_table",
    "sources_table",
    "summary_table",
    "verify_table",
]


def latest_table(rows: Sequence[LatestValue], width: int = 200) -> Table:
    """Latest value of every metric, with source, confidence and age; below `NARROW`
    columns the source and confidence share a column and the observation time is left out
    (the age says it)."""
    narrow = width < NARROW
    table = Table(title="Latest values", title_justify="left")
    table.add_column("Coin", no_wrap=True)
    table.add_column("Metric", overflow="fold")
    table.add_column("Value", justify="right", no_wrap=True)
    cols = ("Source",) if narrow else ("Source", "Confidence", "Age", "Observed (UTC)")
    for col in cols:
        table.add_column(col, justify="right" if col == "Age" else "left")
    if narrow:
        table.add_column("Age", justify="right", no_wrap=True)
    for r in rows:
        value = show(r.metric, r.value) + (
            ("\n" if narrow else " ") + "(est.)" if r.estimated else ""
        )
        cells = [escape(r.symbol), escape(r.metric), value]
        if narrow:
            cells += [f"{escape(r.source)}\n[dim]{r.confidence}[/]", age(r.age_s)]
        else:
            cells += [escape(r.source), r.confidence, age(r.age_s), when(r.observed_at)]
        table.add_row(*cells)
    return table


def history_table(
    symbol: str, metric: str, rows: Sequence[HistoryPoint], width: int | None = None
) -> Table:
    """One metric's values over time, oldest first; money in full (`units.show` exact), so
    that consecutive values differ where they do. Below `NARROW` columns (`width`, default:
    the terminal's) the confidence goes under the source."""
    narrow = (out.width if width is None else width) < NARROW
    table = Table(title=f"{symbol} {metric}", title_justify="left")
    cols = ("Observed (UTC)", "Value", "Source", "Run") if narrow else _HISTORY_COLUMNS
    for col in cols:
        table.add_column(col, justify="right" if col == "Value" else "left", overflow="fold")
    for r in rows:
        source = f"{escape(r.source)}\n[dim]{r.confidence}[/]" if narrow else escape(r.source)
        cells = [when(r.observed_at), show(metric, r.value, exact=True), source]
        table.add_row(*cells, *([] if narrow else [r.confidence]), escape(r.run_id))
    return table


_HISTORY_COLUMNS = ("Observed (UTC)", "Value", "Source", "Confidence", "Run")


def verify_table(rows: Sequence[VerifyRow], time_scale: float) -> Table:
    """The concurrency verification: total time and % faster per configuration."""
    title = "Concurrency verification" + (
        f" (time scale {time_scale:g})" if time_scale != 1 else ""
    )
    table = Table(title=title, title_justify="left")
    for col in ("Run", "Max concurrency", "Delay", "Coins ok", "Total time", "Faster"):
        table.add_column(col, justify="left" if col == "Run" else "right")
    for row in rows:
        s = row.summary
        table.add_row(
            row.case.label,
            str(row.case.max_concurrency),
            f"{row.case.delay_s * time_scale * 1000:.0f} ms",
            f"{s.coins_ok}/{s.coins_total}",
            f"{s.duration_s:.2f} s",
            "baseline" if row is rows[0] else f"{row.faster_pct:.1f} %",
        )
    return table


def coins_table(coins: Sequence[Coin]) -> Table:
    """The configured coins, their priorities, ids and fallback chains."""
    table = Table(title=f"{len(coins)} coins", title_justify="left")
    for col in ("Symbol", "Name", "Priority", "Sources (→ = fallback)", "Ids"):
        table.add_column(col)
    for c in coins:
        chains = "; ".join(" → ".join(chain) for chain in c.chains)
        ids = ", ".join(f"{src}={cid}" for src, cid in c.ids.items())
        table.add_row(
            escape(c.symbol), escape(c.name), str(c.priority), escape(chains), escape(ids)
        )
    return table


def sources_table(
    sources: Mapping[str, Source],
    limits: Mapping[str, SourceLimits],
    batch_sizes: Mapping[str, int],
    keys_set: Mapping[str, bool],
    width: int = 200,
) -> Table:
    """Each source's effective limits, batch size, base URL, whether a key is set, and
    whether it can be used at all (an unavailable source is sent nothing; the caption says
    why). Below `NARROW` columns: Source (status and key under the name), Limits (stacked)
    and the whole Base URL."""
    unavailable = {name: why for name, s in sources.items() if (why := s.unavailable())}
    table = Table(
        title="Sources (effective settings)",
        title_justify="left",
        caption="\n".join(f"{name} unavailable: {why}" for name, why in unavailable.items())
        or None,
        caption_justify="left",
    )
    narrow = width < NARROW
    for col in ("Source", "Limits", "Base URL") if narrow else _SOURCE_COLUMNS:
        table.add_column(
            col,
            justify="right" if col in {"In flight", "Batch"} else "left",
            overflow="fold",  # a long URL wraps: never cut
        )
    for name, source in sources.items():
        key = "set" if keys_set.get(name) else "–"
        cells = _source_cells(name, limits[name], batch_sizes[name], _base_url(source), key)
        state = "[red]unavailable[/]" if name in unavailable else "ready"
        if narrow:
            table.add_row(f"{name}\n{state}\n[dim]key {key}[/]", cells[-1], cells[4])
        else:
            table.add_row(name, state, *cells[:-1])
    return table


def _source_cells(name: str, lim: SourceLimits, batch: int, url: str, key: str) -> tuple[str, ...]:
    """In flight, min interval, per minute, batch, base URL, key, then the stacked limits."""
    spacing = f"{lim.min_interval_s * 1000:g} ms"
    if lim.rate_per_window is None:
        rate = "no rate cap"
    elif round(lim.window_s) == 60:
        rate = f"{lim.rate_per_window}/min"
    else:
        rate = f"{lim.rate_per_window} per {lim.window_s:g} s"
    stacked = f"{lim.max_concurrency} in flight, batch {batch}\n{spacing} apart, {rate}"
    return (
        str(lim.max_concurrency),
        spacing,
        _per_window(lim),
        str(batch),
        escape(url),
        key,
        stacked,
    )


_SOURCE_COLUMNS = (
    "Source", "Status", "In flight", "Min interval", "Per minute", "Batch", "Base URL", "Key"
)  # fmt: skip


def _per_window(lim: SourceLimits) -> str:
    if lim.rate_per_window is None:
        return "–"
    window = "" if round(lim.window_s) == 60 else f" / {lim.window_s:g} s"
    return f"{lim.rate_per_window}{window}"


def _base_url(source: Source) -> str:
    """The source's root URL without its secrets (``token=…``, ``user:password@``)."""
    options = getattr(source, "options", None)
    configured = getattr(options, "base_url", None)
    return source.redact(str(configured or getattr(source, "default_base_url", "") or "–"))
