"""The stored runs as tables: the runs list (``coinharvest runs``) and one run's detail
(``coinharvest runs show``): its coins, the metrics not collected, its request timeline.

Each takes the console `width`: under `cells.NARROW` columns the runs list stacks its
counts into two columns, so that the run id (what ``runs show`` needs) is never cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

from coinharvest.cli.cells import NARROW, secs, status, when

if TYPE_CHECKING:
    from coinharvest.storage.queries import RunDetail, RunRow

__all__ = ["run_detail_view", "runs_table"]

_WIDE = ("Run", "Trigger", "Status", "Started (UTC)", "Duration", "Ok", "Failed", "Deferred",
         "Not stored", "Requests", "429s")  # fmt: skip


def runs_table(rows: Sequence[RunRow], width: int = 200) -> Table:
    """The runs list, newest first; below `NARROW` columns: Run, Status (with the trigger),
    Started, Duration, Coins (ok / failed / deferred / not stored) and Requests (429s)."""
    table = Table(title="Runs", title_justify="left")
    if width < NARROW:
        return _narrow_runs(table, rows)
    for col in _WIDE:
        left = col in {"Run", "Trigger", "Status", "Started (UTC)"}
        table.add_column(col, justify="left" if left else "right", no_wrap=col == "Run")
    for r in rows:
        table.add_row(
            escape(r.run_id),
            escape(r.trigger),
            status(r.status),
            when(r.started_at),
            secs(r.duration_s),
            str(r.coins_ok),
            str(r.coins_failed),
            str(r.coins_deferred),
            f"[red]{r.coins_unsaved}[/]" if r.coins_unsaved else "0",
            str(r.requests),
            str(r.rate_limited),
        )
    return table


def _narrow_runs(table: Table, rows: Sequence[RunRow]) -> Table:
    table.add_column("Run", no_wrap=True, min_width=max((len(r.run_id) for r in rows), default=3))
    table.add_column("Status")
    table.add_column("Started (UTC)")
    for col in ("Duration", "Coins", "Requests"):
        table.add_column(col, justify="right")
    for r in rows:
        coins = [f"{r.coins_ok} ok"] + [
            text
            for n, text in (
                (r.coins_failed, f"[red]{r.coins_failed} failed[/]"),
                (r.coins_deferred, f"[yellow]{r.coins_deferred} deferred[/]"),
                (r.coins_unsaved, f"[red]{r.coins_unsaved} not stored[/]"),
            )
            if n
        ]
        requests = str(r.requests) + (f"\n{r.rate_limited}×429" if r.rate_limited else "")
        table.add_row(
            escape(r.run_id),
            f"{status(r.status)}\n[dim]{escape(r.trigger)}[/]",
            when(r.started_at).replace(" ", "\n"),
            secs(r.duration_s),
            "\n".join(coins),
            requests,
        )
    return table


def run_detail_view(detail: RunDetail, width: int = 200) -> RenderableType:
    """A run's header, its per-coin results, the metrics not collected and why, and its
    per-source request timeline. Below `NARROW` columns both tables stack their small cells
    (status, time and attempts; source and status; the job's times) to leave the errors room.
    """
    narrow = width < NARROW
    notes = _notes_table(detail)
    coins = _run_coins_table(detail, narrow)
    return Group(coins, *([notes] if notes.rows else []), _jobs_table(detail, narrow))


def _run_coins_table(detail: RunDetail, narrow: bool) -> Table:
    run = detail.run
    coins = Table(
        title=f"Run {run.run_id} ({run.trigger}): {status(run.status)}",
        title_justify="left",
        caption=(
            f"started {when(run.started_at)} UTC · {secs(run.duration_s)} · "
            f"{run.coins_ok} ok, {run.coins_failed} failed, {run.coins_deferred} deferred of "
            f"{run.coins_total} · {run.requests} requests, {run.rate_limited} rate-limited, "
            f"{run.retries} retries, max {run.max_in_flight} in flight"
            + (f"\n[red]{escape(run.error)}[/]" if run.error else "")
        ),
    )
    cols = ("Coin", "Status", "Sources", "Error") if narrow else _COIN_COLUMNS
    for col in cols:
        coins.add_column(
            col,
            justify="right" if col in {"Time", "Attempts", "Metrics"} else "left",
            no_wrap=col == "Coin",
            overflow="fold",  # an error's URL wraps: never cut
            max_width=16 if narrow and col == "Sources" else None,
        )
    for c in detail.coins:
        took, sources = f"{c.duration_s * 1000:.0f} ms", escape(c.sources.replace(",", ", "))
        error = escape((c.error or "").replace("; ", "\n"))
        if narrow:
            tries = f"{c.attempts} {'try' if c.attempts == 1 else 'tries'}"
            metrics = f"{c.observation_count} metrics"
            state = f"{status(c.status)}\n{took}\n{tries}"
            coins.add_row(escape(c.symbol), state, f"{sources}\n{metrics}", error)
        else:
            row = (status(c.status), took, str(c.attempts), sources, str(c.observation_count))
            coins.add_row(escape(c.symbol), *row, error)
    return coins


_COIN_COLUMNS = ("Coin", "Status", "Time", "Attempts", "Sources", "Metrics", "Error")


def _notes_table(detail: RunDetail) -> Table:
    notes = Table(title="Metrics not collected, and why", title_justify="left")
    notes.add_column("Coin", no_wrap=True)
    notes.add_column("Note")
    for c in detail.coins:
        for note in (c.notes or "").splitlines():
            notes.add_row(escape(c.symbol), escape(note))
    return notes


def _jobs_table(detail: RunDetail, narrow: bool) -> Table:
    jobs = Table(title="Request timeline (seconds from run start)", title_justify="left")
    if narrow:
        return _narrow_jobs(jobs, detail)
    for col in ("Job", "Try", "Source", "Coins", "Queued", "Started", "Ended", "Status", "Error"):
        jobs.add_column(
            col,
            justify="right" if col in {"Job", "Try", "Queued", "Started", "Ended"} else "left",
            overflow="fold",  # an error's URL wraps: never cut
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
            status(j.status),
            escape(j.error or ""),
        )
    return jobs


def _narrow_jobs(jobs: Table, detail: RunDetail) -> Table:
    """Job/try, source with status, coins, queued then started–ended, error."""
    for col in ("Job", "Source", "Coins", "Times", "Error"):
        jobs.add_column(col, overflow="fold", max_width=12 if col == "Coins" else None)
    for j in detail.jobs:
        started = "" if j.started_s is None else f"{j.started_s:.3f}"
        ended = "" if j.ended_s is None else f"{j.ended_s:.3f}"
        jobs.add_row(
            f"{j.job_id}/{j.attempt}",
            f"{escape(j.source)}\n{status(j.status)}",
            escape(_short(j.symbols).replace(",", ", ")),
            f"q {j.queued_s:.3f}\n{started}–{ended}",
            escape(j.error or ""),
        )
    return jobs


def _short(symbols: str, most: int = 6) -> str:
    names = symbols.split(",")
    return symbols if len(names) <= most else ",".join(names[:most]) + f" +{len(names) - most}"
