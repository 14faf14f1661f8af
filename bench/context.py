"""What every workload receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import Row

__all__ = ["Context", "Outcome"]


@dataclass(frozen=True, slots=True)
class Context:
    """Run options: `scale` multiplies each workload's default time scale."""

    scale: float = 1.0
    out: Path = Path("bench/results")
    #: Longest a baseline case may run before its time is projected from its steady rate.
    baseline_cap_s: float = 10.0
    #: Smoke mode: the smallest cases only (used by tests/test_bench_smoke.py).
    smoke: bool = False


@dataclass(slots=True)
class Outcome:
    """A workload's rows, the notes printed under its table, and its parameters."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
