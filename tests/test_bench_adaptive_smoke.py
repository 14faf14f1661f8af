"""Smoke tests of the dynamic-limits benchmarks (bench/capacity_step.py, hidden_rate.py,
quota_month.py): each at tiny parameters, emulator and CLI in their own processes.

They keep the benchmark code from rotting and check what must hold at any size (no limit
broken, no request inside a Retry-After, no request past a quota, figures computed), never
the timing targets.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import coinharvest.engine.engine as engine_module
from bench import capacity_step, hidden_rate, quota_month


def test_band_and_in_flight_figures() -> None:
    series = [(20.0, 16), (20.5, 9), (21.0, 3), (21.5, 2), (22.0, 1), (22.5, 4), (23.0, 2)]
    assert capacity_step.band(series, 20.0, 24.0, 2) == {"first_s": 1.0, "in_band": 0.8}
    assert capacity_step.band(series, 20.0, 21.0, 2) == {"first_s": None, "in_band": None}
    spans = [(0.0, 1.0), (0.1, 0.3), (0.2, 0.6), (0.7, 0.9)]
    assert capacity_step.max_level(spans) == 3
    bins = capacity_step.in_flight_bins(spans, 0.0, 1.0, 0.5)
    assert bins == [(0.0, 3), (0.5, 2)]


def test_discovery_is_the_last_429_before_a_quiet_stretch() -> None:
    assert hidden_rate.discovery([20.0, 115.0], 400.0, 120.0) == 1
    assert hidden_rate.discovery([20.0, 80.0, 140.0], 200.0, 120.0) is None
    assert hidden_rate.discovery([], 200.0, 120.0) == -1


async def test_capacity_step_runs_clean() -> None:
    p = capacity_step.Params(
        scale=0.1,
        length=0.1,
        coins=150,
        engine_cases=("oracle", "adaptive"),
        cli_cases=("adaptive",),
    )
    result = await capacity_step.run(p)
    cases = result["cases"]
    assert [(c["mode"], c["policy"]) for c in cases] == [
        ("engine", "oracle"),
        ("engine", "adaptive"),
        ("cli", "adaptive"),
    ]
    for case in cases:
        assert case["served"] > 0 and case["non_200"] == 0
        assert case["max_in_flight_trace"] <= capacity_step.CEILING
        assert not case["violations"]
    assert cases[0]["limit_mean_client_cap"][0] == 8.0  # the oracle's cap is the capacity
    assert set(result["targets"]) == {"engine adaptive", "cli adaptive"}
    assert "capacity bound" in capacity_step.tables(cases, p)
    json.dumps(result)


async def test_hidden_rate_runs_clean() -> None:
    variant = hidden_rate.VARIANTS[1]  # 3xpl with x-ratelimit-* headers
    result = await hidden_rate.run(6.0, 0.5, 0.1, variants=(variant,))
    clients = result["clients"]
    assert len(clients) == 6  # engine and CLI × adaptive and fixed, and the long part's two
    for client in clients:
        assert client["requests"] > 0 and client["early_retry"] == 0
        assert client["other_failures"] == 0
    engine_adaptive = next(
        c
        for c in clients
        if (c["part"], c["mode"], c["policy"]) == ("real time", "engine", "adaptive")
    )
    assert engine_adaptive["learned_rate_end"] == 9.9  # 0.9 × (10 + 1), from the headers
    assert engine_adaptive["rate_limited"] == 0
    assert "429s until discovery" in hidden_rate.table(clients)
    json.dumps(result)


async def test_quota_month_never_sends_past_the_quota() -> None:
    p = quota_month.Params(
        start=datetime(2031, 6, 29, tzinfo=UTC),
        days=2,
        quota=60,  # 30 a day for 2 runs of 2 requests an hour
        coins=2,
        schedules_min=(60.0,),
        cli_runs=2,
        cli_daily_quota=3,
    )
    result = await quota_month.run(p)
    (month,) = result["schedules"]
    assert month["sent"] == month["sent_db"] == month["sent_emulator"] == 60
    assert month["over_quota"] == 0 and month["runs_deferred"] > 0
    assert [r["requests_emulator"] for r in result["cli"]["runs"]] == [2, 1]
    assert getattr(engine_module, "datetime") is datetime  # noqa: B009 (put back)
    assert "over quota" in quota_month.tables(result)
    json.dumps(result)
