"""The "Adaptive limits and quotas" table of ``coinharvest sources`` and ``limits show``.

One row per source: the in-flight limit and the start rate per minute the next run starts
from (learned / ceiling: the configured limit, never exceeded), the rate the upstream last
refused, and its quota use today and this month against the allowance. Under it, one line
per source with a quota: what the schedule would use of it, in yellow when it exceeds.

Kept narrow (80 columns fit the usual values): the explanations go in the caption.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from coinharvest.cli.render import age
from coinharvest.engine.adaptive import LimitView
from coinharvest.engine.quota import QuotaPlan
from coinharvest.service.limits import LimitsReport

__all__ = ["limits_view", "plan_lines", "rate"]

_COLUMNS = ("Source", "In flight", "Per minute", "Refused at", "Today", "This month")


def rate(value: float | None) -> str:
    """A rate per minute, short: ``5``, ``29.9``, ``250``, ``1,200``; ``–`` for none."""
    if value is None:
        return "–"
    if not math.isfinite(value):
        return "unlimited"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _quota(used: int | None, allowed: int | None) -> str:
    """``used / allowed``; the count alone for a period without a quota of its own."""
    return _count(used) if allowed is None else f"{_count(used)} / {allowed:,}"


def limits_view(
    report: LimitsReport,
    plans: Sequence[QuotaPlan],
    *,
    adaptive: bool,
    now: datetime,
    db_note: str | None = None,
) -> RenderableType:
    """The table, its caption and the quota plans (see the module docstring).

    :param db_note: why the database was not read (then learned limits and counts are "–").
    """
    table = Table(
        title="Adaptive limits and quotas",
        title_justify="left",
        caption="\n".join(_caption(report, adaptive=adaptive, now=now, db_note=db_note)),
        caption_justify="left",
    )
    for col in _COLUMNS:
        table.add_column(col, justify="left" if col == "Source" else "right")
    for v in report.views:
        table.add_row(*_row(v))
    return Group(table, *plan_lines(plans))


def _row(v: LimitView) -> tuple[str, ...]:
    return (
        v.source,
        f"{v.concurrency} / {v.max_concurrency}",
        f"{rate(v.rate_per_minute)} / {rate(v.max_rate_per_minute)}",
        rate(v.ceiling_per_minute),
        _quota(v.quota_used_day, v.quota_today),
        _quota(v.quota_used_month, v.quota_per_month),
    )


def _caption(
    report: LimitsReport, *, adaptive: bool, now: datetime, db_note: str | None
) -> list[str]:
    lines = [
        "In flight, per minute: learned / ceiling (the configured limit, never exceeded); "
        "refused at: the rate per minute of the last 429 or x-ratelimit-limit.",
        "Today, this month: requests sent / allowance (UTC; a month is spread over its days).",
    ]
    if db_note is not None:
        return [*lines, db_note]
    if not adaptive:
        unused = f" ({report.stored} stored, unused)" if report.stored else ""
        return [
            *lines,
            f"ADAPTIVE_LIMITS=off: the configured limits apply as they are; "
            f"nothing is learned{unused}.",
        ]
    learned = [
        f"{name} {age((now - row.updated_at).total_seconds())} ago"
        for name, row in report.learned.items()
    ]
    fresh = [v.source for v in report.views if v.source not in report.learned]
    if learned:
        lines.append("learned: " + ", ".join(learned))
    if fresh:
        lines.append("not learned yet (starts at the ceiling): " + ", ".join(fresh))
    return lines


def plan_lines(plans: Sequence[QuotaPlan]) -> list[Text]:
    """One line per plan: what the schedule would use of the quota; yellow if it exceeds."""
    lines = []
    for plan in plans:
        if plan.exceeds:
            text = (
                f"quota plan: {plan.describe()}: exceeds; {plan.source}'s jobs will be "
                "deferred when the quota is spent"
            )
            lines.append(Text(text, style="yellow"))
        else:
            lines.append(Text(f"quota plan: {plan.describe()}"))
    return lines
