"""Rich renderings of results for the terminal: run summaries, verify tables, coin lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.markup import escape
from rich.table import Table

from coinharvest.models import Coin, CoinStatus, RunSummary, SourceLimits
from coinharvest.sources.base import Source
from coinharvest.verify import VerifyRow

__all__ = ["coins_table", "summary_table", "verify_table"]

_STATUS_STYLE = {CoinStatus.OK: "green", CoinStatus.FAILED: "red", CoinStatus.DEFERRED: "yellow"}


def summary_table(summary: RunSummary) -> Table:
    """Per-coin results of one run, with the totals in the caption."""
    table = Table(title=f"Run {summary.run_id}: {summary.status.value}", title_justify="left")
    for col in ("Coin", "Status", "Time", "Attempts", "Sources", "Metrics", "Error"):
        table.add_column(col, justify="right" if col in {"Time", "Attempts", "Metrics"} else "left")
    for r in summary.results:
        table.add_row(
            escape(r.symbol),
            f"[{_STATUS_STYLE[r.status]}]{r.status.value}[/]",
            f"{r.duration_s * 1000:.0f} ms",
            str(r.attempts),
            escape(", ".join(r.sources)),
            str(len(r.observations)),
            escape(r.error or "") + _not_collected(r.notes, bool(r.error)),
        )
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
    cols = (
        "Source",
        "Status",
        "In flight",
        "Min interval",
        "Per minute",
        "Batch",
        "Base URL",
        "Key",
    )
    for col in cols:
        table.add_column(col, justify="right" if col in {"In flight", "Batch"} else "left")
    for name, source in sources.items():
        lim = limits[name]
        per_window = "–" if lim.rate_per_window is None else str(lim.rate_per_window)
        if lim.rate_per_window is not None and round(lim.window_s) != 60:
            per_window += f" / {lim.window_s:g} s"
        table.add_row(
            name,
            "[red]unavailable[/]" if name in unavailable else "ready",
            str(lim.max_concurrency),
            f"{lim.min_interval_s * 1000:g} ms",
            per_window,
            str(batch_sizes[name]),
            _base_url(source),
            "set" if keys_set.get(name) else "–",
        )
    return table


def _base_url(source: Source) -> str:
    options = getattr(source, "options", None)
    configured = getattr(options, "base_url", None)
    return str(configured or getattr(source, "default_base_url", "") or "–")
