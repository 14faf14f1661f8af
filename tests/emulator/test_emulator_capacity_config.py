"""The ``capacity`` section: validation, files, live config, and the schedule's arithmetic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from coinharvest.emulator import (
    CapacityConfig,
    EmulatorConfig,
    RunningEmulator,
    load_config,
    run_emulator,
)
from coinharvest.emulator.capacity_schedule import capacity_at, next_rise

EXAMPLE = """
[upstreams.3xpl.capacity]
concurrent = 8
steps = [ { at_s = 20, concurrent = 2 }, { at_s = 40, concurrent = 8, ramp_s = 5 } ]
hidden_rate = 10
hidden_window_s = 60
headers = true
"""


def one_line_error(**fields: Any) -> str:
    """The message of the single error ``CapacityConfig(**fields)`` raises."""
    with pytest.raises(ValidationError) as caught:
        CapacityConfig.model_validate(fields)
    errors = caught.value.errors()
    assert len(errors) == 1
    message = str(errors[0]["msg"])
    assert "\n" not in message
    return message


def test_defaults_switch_everything_off() -> None:
    assert EmulatorConfig().upstreams["3xpl"].capacity == CapacityConfig()
    off = CapacityConfig()
    assert (off.concurrent, off.steps, off.hidden_rate, off.headers) == (None, [], None, False)


def test_bad_values_are_one_line_errors() -> None:
    assert "greater than or equal to 1" in one_line_error(concurrent=-1)
    assert "greater than or equal to 1" in one_line_error(concurrent=0)
    steps = [{"at_s": 5, "concurrent": 3}, {"at_s": 5, "concurrent": 4}]
    message = one_line_error(concurrent=2, steps=steps)
    assert message.endswith("capacity.steps must be in increasing at_s order (at_s 5 follows 5)")
    ramp = [{"at_s": 1, "concurrent": 3, "ramp_s": 2}]
    assert "cannot ramp from unlimited" in one_line_error(steps=ramp)
    assert "greater than or equal to 1" in one_line_error(hidden_rate=0)
    assert "greater than 0" in one_line_error(hidden_window_s=0)
    assert "greater than or equal to 0" in one_line_error(steps=[{"at_s": -1, "concurrent": 1}])
    assert "Extra inputs" in one_line_error(concurent=3)


def test_the_documented_toml_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "emu.toml"
    path.write_text(EXAMPLE)
    capacity = load_config(path).upstreams["3xpl"].capacity
    assert capacity.concurrent == 8 and capacity.hidden_rate == 10 and capacity.headers
    assert [(s.at_s, s.concurrent, s.ramp_s) for s in capacity.steps] == [
        (20, 2, 0.0),
        (40, 8, 5.0),
    ]


def test_schedule_steps_and_ramps() -> None:
    cfg = CapacityConfig.model_validate(
        {
            "concurrent": 8,
            "steps": [{"at_s": 20, "concurrent": 2}, {"at_s": 40, "concurrent": 8, "ramp_s": 6}],
        }
    )
    levels = {t: capacity_at(cfg, t) for t in (0, 19.9, 20, 39.9, 40, 42.9, 43, 45.9, 46, 99)}
    assert levels == {0: 8, 19.9: 8, 20: 2, 39.9: 2, 40: 2, 42.9: 4, 43: 5, 45.9: 7, 46: 8, 99: 8}
    assert next_rise(cfg, 0) == 20 and next_rise(cfg, 25) == 40
    assert next_rise(cfg, 40) == pytest.approx(41)  # 2 -> 3 slots after a sixth of the ramp
    assert next_rise(cfg, 43.5) == pytest.approx(44)
    assert next_rise(cfg, 46) is None


def test_schedule_ramp_cut_short_by_the_next_step_and_unlimited_start() -> None:
    cfg = CapacityConfig.model_validate(
        {
            "concurrent": 10,
            "steps": [
                {"at_s": 0, "concurrent": 2, "ramp_s": 8},  # falling: 10 -> 2 over 8 s
                {"at_s": 4, "concurrent": 12, "ramp_s": 6},  # from 6 (mid-ramp) to 12
            ],
        }
    )
    assert [capacity_at(cfg, t) for t in (0, 2, 3.9, 4, 5, 10)] == [10, 8, 6, 6, 7, 12]
    assert next_rise(cfg, 2) == 4  # falling needs no wake-up before the next step
    unlimited = CapacityConfig.model_validate({"steps": [{"at_s": 1, "concurrent": 3}]})
    assert [capacity_at(unlimited, t) for t in (0, 1)] == [None, 3]


async def test_invalid_live_capacity_is_refused_and_changes_nothing(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    steps = [{"at_s": 2, "concurrent": 1}, {"at_s": 1, "concurrent": 2}]
    bad = {"upstreams": {"3xpl": {"capacity": {"concurrent": 4, "steps": steps}}}}
    response = await client.post("/__emulator__/config", json=bad)
    assert response.status_code == 400 and response.json()["error"] == "invalid configuration"
    assert "increasing at_s" in response.json()["details"][0]["msg"]
    assert emu.config == EmulatorConfig(seed=42, universe=20)


async def test_run_emulator_with_a_capacity_and_the_stats_document(tmp_path: Path) -> None:
    path = tmp_path / "emu.toml"
    path.write_text(EXAMPLE)
    config = load_config(path)
    async with run_emulator(config) as emu, httpx.AsyncClient(base_url=emu.base_url) as client:
        stats = (await client.get("/__emulator__/stats")).json()
        assert stats["service"]["3xpl"] == {
            "capacity": 8,
            "queued": 0,
            "in_service": 0,
            "served": 0,
            "max_queued": 0,
            "max_in_service": 0,
        }
        assert stats["service"]["coingecko"]["capacity"] is None
        assert stats["hidden_rejected"] == {}
        got = (await client.get("/__emulator__/config")).json()["upstreams"]["3xpl"]["capacity"]
        assert got["steps"][1] == {"at_s": 40.0, "concurrent": 8, "ramp_s": 5.0}
