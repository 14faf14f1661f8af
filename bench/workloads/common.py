"""Turning run results into rows (shared by the emulator workloads)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.baselines.seed import BaselineSummary
from bench.harness import cooldown_starts, source_done
from bench.report import Row
from coinharvest.models import RunSummary

__all__ = ["coinharvest_row", "seed_row"]


def coinharvest_row(
    workload: str,
    case: str,
    summary: RunSummary,
    emu: Mapping[str, Any],
    bound_s: float,
    **extra: Any,
) -> Row:
    """A row for one coinharvest run (violations and cooldown requests from the emulator)."""
    return Row(
        workload,
        case,
        "coinharvest",
        summary.duration_s,
        bound_s,
        summary.requests,
        summary.rate_limited,
        emu["violations"],
        cooldown_requests=emu["early_retry"],
        extra={
            "coins_ok": summary.coins_ok,
            "coins_total": summary.coins_total,
            "source_done_s": {k: round(v, 4) for k, v in source_done(summary.jobs).items()},
            "cooldown_starts_from_job_records": cooldown_starts(summary),
            "violation_kinds": emu["violation_kinds"],
            **extra,
        },
    )


def seed_row(
    workload: str,
    case: str,
    base: BaselineSummary,
    emu: Mapping[str, Any],
    bound_s: float,
    n_coins: int,
    **extra: Any,
) -> Row:
    """A row for one baseline run; a capped run's time and requests are projected linearly."""
    done = max(1, base.coins_done)
    factor = 1.0 if base.finished else n_coins / done
    return Row(
        workload,
        case,
        "seed",
        base.duration_s * factor,
        bound_s,
        round(len(base.requests) * factor),
        base.rate_limited,
        emu["violations"],
        cooldown_requests=emu["early_retry"],
        projected=not base.finished,
        extra={
            "coins_ok": base.coins_ok,
            "coins_done": base.coins_done,
            "measured_s": round(base.duration_s, 4),
            "measured_requests": len(base.requests),
            "source_done_s": _seed_done(base),
            "violation_kinds": emu["violation_kinds"],
            **extra,
        },
    )


def _seed_done(base: BaselineSummary) -> dict[str, float]:
    done: dict[str, float] = {}
    for r in base.requests:
        done[r.source] = max(done.get(r.source, 0.0), round(r.ended_s, 4))
    return done


def per_source_done(rows: Sequence[Row], source: str) -> list[float | None]:
    """The completion time of `source` in each row (None if it did not run there)."""
    return [row.extra.get("source_done_s", {}).get(source) for row in rows]
