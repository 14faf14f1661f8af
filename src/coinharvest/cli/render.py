"""Every Rich table of the command line: run summaries, sources, coins, the verification,
the runs list, one run's detail, latest values and a metric's history.

One status→colour map (`_STYLE`) serves them all, so a status looks the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # annotations only: `latest` need not import the engine or httpx
    from coinharvest.models import Coin, RunSummary, SourceLimits
    from coinharvest.sources.base import Source
    from coinharvest.storage.queries import HistoryPoint, LatestValue, RunDetail, RunRow
    from coinharvest.verify import VerifyRow

__all__ = [
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

_STYLE = {
    "ok": "green",
    "completed": "green",
    "failed": "red",
    "partial": "yellow",
    "deferred": "yellow",
    "interrupted": "magenta",
    "running": "cyan",
    "rate_limited": "yellow",
    "retried": "yellow",
}


def _status(value: str) -> str:
    style = _STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at is not None else ""


def _secs(value: float | None) -> str:
    return f"{value:.2f} s" if value is not None else ""


def age(seconds: float) -> str:
    """A short human age: ``42s``, ``5m``, ``3h``, ``2d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def runs_table(rows: Sequence[RunRow]) -> Table:
    """The runs list, newest first."""
    table = Table(title="Runs", title_justify="left")
    for col in (
        "Run",
        "Trigger",
        "Status",
        "Started (UTC)",
        "Duration",
        "Ok",
        "Failed",
        "Deferred",
        "Not stored",
        "Requests",
        "429s",
    ):
        table.add_column(
            col, justify="left" if col in {"Run", "Trigger", "Status", "Started (UTC)"} else "right"
        )
    for r in rows:
        table.add_row(
            escape(r.run_id),
            escape(r.trigger),
            _status(r.status),
            _when(r.started_at),
            _secs(r.duration_s),
            str(r.coins_ok),
            str(r.coins_failed),
            str(r.coins_deferred),
            f"[red]{r.coins_unsaved}[/]" if r.coins_unsaved else "0",
            str(r.requests),
            str(r.rate_limited),
        )
    return table


def run_detail_view(detail: RunDetail) -> RenderableType:
    """A run's header, its per-coin results, the metrics not collected and why, and its
    per-source request timeline."""
    notes = _notes_table(detail)
    return Group(_run_coins_table(detail), *([notes] if notes.rows else []), _jobs_table(detail))


def _run_coins_table(detail: RunDetail) -> Table:
    run = detail.run
    coins = Table(
        title=f"Run {run.run_id} ({run.trigger}): {_status(run.status)}",
        title_justify="left",
        caption=(
            f"started {_when(run.started_at)} UTC · {_secs(run.duration_s)} · "
            f"{run.coins_ok} ok, {run.coins_failed} failed, {run.coins_deferred} deferred of "
            f"{run.coins_total} · {run.requests} requests, {run.rate_limited} rate-limited, "
            f"{run.retries} retries, max {run.max_in_flight} in flight"
            + (f"\n[red]{escape(run.error)}[/]" if run.error else "")
        ),
    )
    for col in ("Coin", "Status", "Time", "Attempts", "Sources", "Metrics", "Error"):
        coins.add_column(col, justify="right" if col in {"Time", "Attempts", "Metrics"} else "left")
    for c in detail.coins:
        coins.add_row(
            escape(c.symbol),
            _status(c.status),
            f"{c.duration_s * 1000:.0f} ms",
            str(c.attempts),
            escape(c.sources),
            str(c.observation_count),
            escape(c.error or ""),
        )
    return coins


def _notes_table(detail: RunDetail) -> Table:
    notes = Table(title="Metrics not collected, and why", title_justify="left")
    for col in ("Coin", "Note"):
        notes.add_column(col)
    for c in detail.coins:
        for note in (c.notes or "").splitlines():
            notes.add_row(escape(c.symbol), escape(note))
    return notes


def _jobs_table(detail: RunDetail) -> Table:
    jobs = Table(title="Request timeline (seconds from run start)", title_justify="left")
    for col in ("Job", "Try", "Source", "Coins", "Queued", "Started", "Ended", "Status", "Error"):
        jobs.add_column(
            col, justify="right" if col in {"Job", "Try", "Queued", "Started", "Ended"} else "left"
        )
    for j in detail.jobs:
        jobs.add_row(
            str(j.job_id),
            str(j.attempt),
            escape(j.source),
            escape(_short(j.symbols)),
            f"{j.queued_s:.3f}",
            "" if j.started_s is None else f"{j.started_s:.3f}",
            "" if j.ended_s is None else f"{j.ended_s:.3f}",
            _status(j.status),
            escape(j.error or ""),
        )
    return jobs


def latest_table(rows: Sequence[LatestValue]) -> Table:
    """Latest value of every metric, with source, confidence and age."""
    table = Table(title="Latest values", title_justify="left")
    for col in ("Coin", "Metric", "Value", "Source", "Confidence", "Age", "Observed (UTC)"):
        table.add_column(col, justify="right" if col in {"Value", "Age"} else "left")
    for r in rows:
        value = "" if r.value is None else f"{r.value:,.6g}"
        table.add_row(
            escape(r.symbol),
            escape(r.metric),
            value + (" (est.)" if r.estimated else ""),
            escape(r.source),
            r.confidence,
            age(r.age_s),
            _when(r.observed_at),
        )
    return table


def history_table(symbol: str, metric: str, rows: Sequence[HistoryPoint]) -> Table:
    """One metric's values over time, oldest first."""
    table = Table(title=f"{symbol} {metric}", title_justify="left")
    for col in ("Observed (UTC)", "Value", "Source", "Confidence", "Run"):
        table.add_column(col, justify="right" if col == "Value" else "left")
    for r in rows:
        table.add_row(
            _when(r.observed_at),
            "" if r.value is None else f"{r.value:,.6g}",
            escape(r.source),
            r.confidence,
            escape(r.run_id),
        )
    return table


def _short(symbols: str, most: int = 6) -> str:
    names = symbols.split(",")
    return symbols if len(names) <= most else ",".join(names[:most]) + f" +{len(names) - most}"


# --------------------------------------------------------------------------- runs as they end


#: Most coin rows `summary_table` prints; a larger run shows its problems first, then a count.
SUMMARY_ROWS = 50


def summary_table(summary: RunSummary, most: int = SUMMARY_ROWS) -> Table:
    """Per-coin results of one run, with the totals in the caption.

    Up to `most` rows: every coin of a small run; of a larger one, the coins that failed,
    were deferred or lost metrics first, then a last row counting the coins not shown (all
    of them are in ``coinharvest runs show``). A 10,000-coin table took ~10 s to print.
    """
    table = Table(title=f"Run {summary.run_id}: {summary.status.value}", title_justify="left")
    for col in ("Coin", "Status", "Time", "Attempts", "Sources", "Metrics", "Error"):
        table.add_column(col, justify="right" if col in {"Time", "Attempts", "Metrics"} else "left")
    results = summary.results
    if len(results) > most:
        results = sorted(results, key=lambda r: r.status.value == "ok" and not r.notes)[:most]
    for r in results:
        table.add_row(
            escape(r.symbol),
            _status(r.status.value),
            f"{r.duration_s * 1000:.0f} ms",
            str(r.attempts),
            escape(", ".join(r.sources)),
            str(len(r.observations)),
            escape(r.error or "") + _not_collected(r.notes, bool(r.error)),
        )
    if hidden := len(summary.results) - len(results):
        more = f"[dim]… {hidden:,} more coins (coinharvest runs show {summary.run_id})[/]"
        table.add_row(more, "", "", "", "", "", "")
    table.caption = (
        f"{summary.coins_ok} ok, {summary.coins_failed} failed, {summary.coins_deferred} deferred "
        f"of {summary.coins_total} in {summary.duration_s:.2f} s · {summary.requests} requests, "
        f"{summary.rate_limited} rate-limited, {summary.retries} retries, "
        f"max {summary.max_in_flight} in flight"
        + (f" · {summary.coins_unsaved} coins NOT STORED" if summary.coins_unsaved else "")
    )
    return table


def _not_collected(notes: Sequence[str], after_error: bool) -> str:
    """``"2 metrics not collected"`` (dimmed) when a coin's answers dropped some metrics."""
    if not notes:
        return ""
    text = f"{len(notes)} metric{'s' if len(notes) > 1 else ''} not collected (runs show)"
    return ("; " if after_error else "") + f"[dim]{text}[/]"


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
) -> Table:
    """Each source's effective limits, batch size, base URL, whether a key is set, and
    whether it can be used at all (an unavailable source is sent nothing; the caption says
    why)."""
    unavailable = {name: why for name, s in sources.items() if (why := s.unavailable())}
    table = Table(
        title="Sources (effective settings)",
        title_justify="left",
        caption="\n".join(f"{name} unavailable: {why}" for name, why in unavailable.items())
        or None,
        caption_justify="left",
    )
    for col in _SOURCE_COLUMNS:
        table.add_column(col, justify="right" if col in {"In flight", "Batch"} else "left")
    for name, source in sources.items():
        lim = limits[name]
        table.add_row(
            name,
            "[red]unavailable[/]" if name in unavailable else "ready",
            str(lim.max_concurrency),
            f"{lim.min_interval_s * 1000:g} ms",
            _per_window(lim),
            str(batch_sizes[name]),
            _base_url(source),
            "set" if keys_set.get(name) else "–",
        )
    return table


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
