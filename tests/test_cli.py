"""The CLI as a user runs it: subprocesses, real exit statuses, real output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "COINS_FILE"}}
    full_env.update(env or {})
    full_env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "coinharvest", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_verify_reproduces_the_seed_ratios_at_time_scale_005(tmp_path: Path) -> None:
    result = run_cli("verify", "--time-scale", "0.05", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    times = {
        m[0]: float(m[1])
        for m in re.findall(r"│ (sequential \+ delay|max 3|max 5)\s.*?([\d.]+) s │", result.stdout)
    }
    assert set(times) == {"sequential + delay", "max 3", "max 5"}, result.stdout
    # The seed: about 70 s sequential, about 5 s at max 5 (×0.05: 3.5 s and 0.25 s).
    assert abs(times["sequential + delay"] - 3.5) <= 3.5 * 0.05
    assert abs(times["max 5"] - 0.25) <= 0.25 * 0.20  # loose: absolute times on a shared CI box
    faster = 1 - times["max 5"] / times["sequential + delay"]
    assert faster >= 0.90
    assert abs(faster - (1 - 5.0 / 70.0)) <= 0.05
    # The seed's log lines, through the real engine.
    assert "Processing 11 coins with max concurrency: 5" in result.stderr
    assert "INFO engine Collecting Bitcoin (BTC)..." in result.stderr
    assert re.search(r"INFO engine ETH Success in \d+ms", result.stderr)
    assert "✅" not in result.stderr  # emoji only on a terminal


def test_help_explains_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("collect", "verify", "coins", "emulator"):
        assert command in result.stdout
    verify_help = run_cli("verify", "--help").stdout
    assert "--time-scale" in verify_help and "--coins" in verify_help


def test_bad_coins_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "coins.toml"
    bad.write_text('[[coin]]\nsymbol = "BTC"\nname = "Bitcoin"\nids = { coinbase = "btc" }\n')
    result = run_cli("collect", "--coins", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "coinbase" in line]
    assert len(lines) == 1 and "line 1" in lines[0] and "BTC" in lines[0]


def test_deprecated_delay_warns_once(tmp_path: Path) -> None:
    result = run_cli("coins", env={"DELAY_BETWEEN_COINS_MS": "5000"}, cwd=tmp_path)
    assert result.returncode == 0
    result = run_cli(
        "collect",
        "--coins",
        str(tmp_path / "none.toml"),
        env={"DELAY_BETWEEN_COINS_MS": "5000"},
        cwd=tmp_path,
    )
    assert result.stderr.count("DELAY_BETWEEN_COINS_MS") == 1


def test_demo_collects_the_11_coins_through_the_emulator(tmp_path: Path) -> None:
    result = run_cli("demo", cwd=tmp_path, env={"DEBUG": "limiter"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DEBUG limiter coingecko: start granted" in result.stderr  # DEBUG namespaces work
    assert "DEBUG engine" not in result.stderr
    assert "11 ok, 0 failed, 0 deferred of 11" in result.stdout
    assert re.search(r"emulator: coingecko 1,.* requests; 0 limit violations", result.stdout)
    assert "Processing 11 coins with max concurrency: 5" in result.stderr
    # Stored the moment each coin finished: `latest` shows all 11 from the demo's database.
    latest = run_cli("latest", "--json", cwd=tmp_path)
    assert latest.returncode == 0, latest.stderr
    rows = json.loads(latest.stdout)
    # One timestamp format for the CLI's JSON and the API's: ISO 8601 ending in Z.
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", row["observed_at"]) for row in rows)
    symbols = {row["symbol"] for row in rows}
    assert symbols == {
        "BTC",
        "ETH",
        "DASH",
        "DGB",
        "XMR",
        "RVN",
        "XCH",
        "XEC",
        "XNO",
        "NEAR",
        "ICP",
    }


def test_sources_lists_limits_and_never_the_key(tmp_path: Path) -> None:
    result = run_cli(
        "sources",
        env={"COINGECKO_API_KEY": "sekrit-123", "MAX_NANO_CONCURRENCY": "2"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "sekrit" not in result.stdout + result.stderr
    first = result.stdout.split("Adaptive limits and quotas")[0]  # tests/cli: the second
    rows = {line.split("│")[1].strip(): line for line in first.splitlines() if line.startswith("│")}
    assert "set" in rows["coingecko"] and "250" in rows["coingecko"]
    assert rows["nano"].split("│")[3].strip() == "2"
    assert rows["nano"].split("│")[2].strip() == "ready"
    # No Blockchair key: unavailable, and the caption says why.
    assert rows["blockchair"].split("│")[2].strip() == "unavailable"
    assert "blockchair unavailable: needs an API key" in result.stdout
    assert "BLOCKCHAIR_API_KEY" in result.stdout


def test_a_plugin_source_is_usable_in_the_coins_file(tmp_path: Path) -> None:
    coins = tmp_path / "coins.toml"
    coins.write_text('[[coin]]\nsymbol = "DASH"\nname = "Dash"\nids = { blockcypher = "dash" }\n')
    examples = str(Path(__file__).resolve().parents[1] / "examples")
    env = {"EXTRA_SOURCES": "blockcypher_source:BlockCypherSource", "PYTHONPATH": examples}
    result = run_cli("coins", "--coins", str(coins), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "blockcypher=dash" in result.stdout
    without = run_cli("coins", "--coins", str(coins), cwd=tmp_path)
    assert without.returncode == 2 and "unknown source 'blockcypher'" in without.stderr


# --- numbers are bounded: a usage error with exit status 2, never a traceback (issue 12) -------


def usage_error_line(result: subprocess.CompletedProcess[str], option: str) -> str:
    """The one line of a usage error about `option` (Typer draws it in a box)."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if "Invalid value for" in line]
    assert len(lines) == 1, result.stderr
    assert option in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "option", "says"),
    [
        (("runs", "-n", "99999999999999999999"), "--limit", "less than or equal to 10000"),
        (("runs", "--limit", "0"), "--limit", "greater than or equal to 1"),
        (("verify", "--time-scale", "inf"), "--time-scale", "less than or equal to 10"),
        (("verify", "--time-scale", "1e308"), "--time-scale", "less than or equal to 10"),
        (("verify", "--time-scale", "nan"), "--time-scale", "Input should be"),
        (("verify", "--coins", "99999999999999999999"), "--coins", "less than or equal to 1000"),
        (("run", "--port", "99999999999999999999"), "--port", "less than or equal to 65535"),
        (("serve", "--port", "-1"), "--port", "greater than or equal to 0"),
    ],
)
def test_numeric_options_are_bounded(
    tmp_path: Path, args: tuple[str, ...], option: str, says: str
) -> None:
    result = run_cli(*args, cwd=tmp_path, timeout=30)
    assert says in usage_error_line(result, option)
    assert not (tmp_path / "coinharvest.db").exists()  # refused before anything ran


@pytest.mark.parametrize("command", ["history BTC -m price_usd", "export"])
@pytest.mark.parametrize("since", ["1000000d", "99999999999999999999999h"])
def test_since_too_far_back_is_a_usage_error(tmp_path: Path, command: str, since: str) -> None:
    result = run_cli(*command.split(), "--since", since, cwd=tmp_path, timeout=30)
    line = usage_error_line(result, "--since")
    assert f"{since!r} reaches back too far" in line


def test_bad_coin_symbol_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "coins.toml"
    bad.write_text(
        '[[coin]]\nsymbol = "BTC"\nname = "Bitcoin"\nids = { coingecko = "bitcoin" }\n\n'
        '[[coin]]\nsymbol = "<img src=x>"\nname = "Bad"\nids = { coingecko = "bad" }\n'
    )
    for command in ("coins", "collect"):
        result = run_cli(command, "--coins", str(bad), cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            f"error: {bad} line 6: coin #2: symbol '<img src=x>' is invalid: must be 1-32 "
            "characters of A-Z, a-z, 0-9, '.', '-', '_'"
        ]
