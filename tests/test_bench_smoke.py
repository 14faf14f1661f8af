"""Smoke test of the benchmark runner (bench/): the smallest workloads at a tiny scale.

Keeps the bench code from rotting; asserts correctness (no violations, ratios computed,
files written), never timing targets.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bound import SourceLoad, run_bound, storm_bound
from bench.cli import run_workloads
from bench.context import Context
from coinharvest.models import SourceLimits


def test_bounds_follow_the_limits() -> None:
    cg = SourceLimits(max_concurrency=3, min_interval_s=2.0, rate_per_window=30, window_s=60.0)
    assert run_bound([SourceLoad("cg", 1, cg, 0.5)], 5) == 0.5
    assert run_bound([SourceLoad("cg", 40, cg, 0.5)], 5) == pytest.approx(39 * 2.0 + 0.5)
    windowed = SourceLimits(max_concurrency=3, min_interval_s=0.0, rate_per_window=30)
    assert run_bound([SourceLoad("w", 31, windowed, 0.5)], 5) == pytest.approx(60.5)
    spaced = SourceLimits(max_concurrency=1, min_interval_s=1.0)
    assert storm_bound(SourceLoad("s", 10, spaced, 0.1), 2.5, 2.0) == pytest.approx(4.5 + 6.1)


async def test_smallest_workloads_run_clean(tmp_path: Path) -> None:
    ctx = Context(scale=0.25, out=tmp_path, baseline_cap_s=5.0, smoke=True)
    done = dict(await run_workloads(["w1", "w2"], ctx))
    rows = done["w2"].rows
    ours = next(r for r in rows if r.impl == "coinharvest")
    seed = next(r for r in rows if r.impl == "seed")
    assert ours.violations == 0 and seed.violations == 0
    assert ours.requests == 1 and seed.requests == 11
    assert all(math.isfinite(r.ratio) and r.ratio > 0 for r in rows + done["w1"].rows)
    assert (tmp_path / "w2.json").exists() and (tmp_path / "w2.md").exists()


def test_the_strict_servers_judge_sees_each_kind_of_violation() -> None:
    from bench.strict_server import violations

    judge = functools.partial(
        violations, spacing_s=0.2, per_window=3, window_s=1.0, max_in_flight=2
    )
    clean = judge([0.0, 0.3, 0.6], [0.5, 0.8, 1.1])
    assert (clean["spacing"], clean["window"], clean["in_flight"]) == (0, 0, 0)
    close = judge([0.0, 0.15, 0.5], [0.1, 0.2, 0.6])
    assert close["spacing"] == 1 and close["min_gap_ms"] == 150.0
    crowded = judge([0.0, 0.25, 0.5, 0.75], [0.1, 0.3, 0.6, 0.8])
    assert crowded["window"] == 1
    overlapping = judge([0.0, 0.25, 0.5], [1.0, 1.0, 1.0])
    assert overlapping["in_flight"] == 1 and overlapping["peak_in_flight"] == 3
