"""Control plane (stats, reset, live config), configuration files and the CLI command."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from coinharvest.emulator import (
    STRICT_LIMITS,
    EmulatorConfig,
    FaultConfig,
    LimitConfig,
    RunningEmulator,
    load_config,
    run_emulator,
)
from coinharvest.emulator.command import build_config, emulator

PING = "/coingecko/api/v3/ping"


async def test_stats_document(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    await client.get(PING)
    await client.get("/coingecko/api/v3/simple/price?ids=bitcoin,dash&vs_currencies=usd")
    stats = (await client.get("/__emulator__/stats")).json()
    expected = {"uptime_s", "requests_total", "requests", "responses", "rate_limited"}
    expected |= {"violations", "faults", "max_in_flight", "min_spacing_ms", "ids_per_request"}
    assert expected <= set(stats)
    assert stats["requests_total"] == 2
    assert stats["responses"]["coingecko"] == {"200": 2}
    assert stats["ids_per_request"]["coingecko"]["/simple/price"]["recent"] == [2]
    assert stats == await emu.stats() | {"uptime_s": stats["uptime_s"]}


async def test_reset_clears_counters_and_limiter_state(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("coingecko", limits={"rate": 1, "retry_after": "never"})
    await client.get(PING)
    assert (await client.get(PING)).status_code == 429
    assert (await client.post("/__emulator__/reset")).json() == {"ok": True}
    stats = await emu.stats()
    assert stats["requests_total"] == 0 and stats["violations"]["total"] == 0
    assert (await client.get(PING)).status_code == 200  # the window was cleared too
    assert emu.config.upstreams["coingecko"].limits.rate == 1  # config is kept


async def test_live_config_over_http_merges(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    patch = {"upstreams": {"nano": {"limits": {"rate": 2}, "faults": {"error_503": 1.0}}}}
    response = await client.post("/__emulator__/config", json=patch)
    assert response.status_code == 200
    assert response.json()["upstreams"]["nano"]["limits"]["rate"] == 2
    assert (await client.post("/nano", json={"action": "block_count"})).status_code == 503
    current = (await client.get("/__emulator__/config")).json()
    assert current["upstreams"]["nano"]["faults"]["error_503"] == 1.0
    assert current["seed"] == 42  # untouched fields survive a merge
    replaced = await client.post("/__emulator__/config?replace=true", json={"seed": 5})
    assert replaced.json()["upstreams"]["nano"]["faults"]["error_503"] == 0.0


async def test_invalid_live_config_is_rejected_and_changes_nothing(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    bad = {"upstreams": {"coingecko": {"faults": {"error_500": 0.7, "error_503": 0.7}}}}
    response = await client.post("/__emulator__/config", json=bad)
    assert response.status_code == 400 and response.json()["error"] == "invalid configuration"
    typo = await client.post("/__emulator__/config", json={"upstreams": {"coingeko": {}}})
    assert typo.status_code == 400
    assert emu.config == EmulatorConfig(seed=42, universe=20)


async def test_universe_change_at_runtime(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    assert (await client.get("/coingecko/api/v3/coins/synth-00100")).status_code == 404
    await emu.configure({"universe": 20_000})
    assert (await client.get("/coingecko/api/v3/coins/synth-20000")).status_code == 200
    three = (await client.get("/3xpl/?from=synth-19999")).json()
    assert three["data"]["blockchains"]["synth-19999"]["best_block"] > 0


def test_validators_reject_bad_values() -> None:
    with pytest.raises(ValidationError):
        LimitConfig(retry_after=1.5)
    with pytest.raises(ValidationError):
        LimitConfig(status=418)
    with pytest.raises(ValidationError):
        FaultConfig(reset=0.6, hang=0.6)
    with pytest.raises(ValidationError):
        EmulatorConfig(universe=20_001)
    with pytest.raises(ValidationError):
        LimitConfig(min_interval_ms=-1)


def test_config_files_toml_and_json(tmp_path: Path) -> None:
    toml_file = tmp_path / "emu.toml"
    toml_file.write_text(
        'universe = 10\n[upstreams.3xpl.limits]\nrate = 7\nretry_after = "never"\n'
        "[upstreams.3xpl.faults.storm]\nstart_s = 5\nduration_s = 2\n"
    )
    config = load_config(toml_file)
    assert config.universe == 10 and config.upstreams["3xpl"].limits.rate == 7
    assert config.upstreams["3xpl"].faults.storm is not None
    json_file = tmp_path / "emu.json"
    json_file.write_text(json.dumps({"upstreams": {"nano": {"latency": {"fixed_ms": 5}}}}))
    assert load_config(json_file).upstreams["nano"].latency.fixed_ms == 5


def test_build_config_layers(tmp_path: Path) -> None:
    config_file = tmp_path / "emu.json"
    config_file.write_text(json.dumps({"upstreams": {"nano": {"limits": {"rate": 99}}}}))
    config = build_config(config_file, strict=True, latency_ms=12.5, universe=3)
    assert config.upstreams["coingecko"].limits == STRICT_LIMITS["coingecko"]
    assert config.upstreams["nano"].limits.rate == 99  # file over --strict
    assert config.upstreams["nano"].limits.min_interval_ms == 1000  # rest of strict kept
    assert all(u.latency.fixed_ms == 12.5 for u in config.upstreams.values())
    assert config.universe == 3


def test_cli_help_documents_every_option() -> None:
    app = typer.Typer()
    app.command("emulator")(emulator)
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    options = (
        "--port",
        "--host",
        "--latency-ms",
        "--universe",
        "--strict",
        "--config",
        "--blockchair-keyless",
        "--nano-pre-v19",
        "--nano-rate-limit-body",
    )
    for option in options:
        assert option in result.output
    assert "Max allowed requests of N reached" in result.output
    assert "cemented" in result.output and "430" in result.output


async def test_two_emulators_side_by_side_on_free_ports() -> None:
    async with run_emulator() as first, run_emulator() as second:
        assert first.port != second.port
        async with httpx.AsyncClient() as client:
            for running in (first, second):
                response = await client.get(running.base_urls["coingecko"] + "/ping")
                assert response.status_code == 200
