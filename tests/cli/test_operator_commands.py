"""What an operator meets in the CLI, run as a user runs it (subprocesses, a real SQLite
file made by ``coinharvest demo``): read-only commands without a database, 80 columns,
coin order in ``runs show``, CSV booleans, help and flags."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from coinharvest.coins import load_coins

from .test_limits_commands import run_cli

READ_ONLY = [
    ("latest",),
    ("history", "BTC", "-m", "price_usd"),
    ("runs",),
    ("runs", "show", "abc"),
    ("export",),
    ("export", "-o", "out.csv"),
]


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose ./coinharvest.db holds one demo run of the 11 packaged coins."""
    where = tmp_path_factory.mktemp("collected")
    result = run_cli("demo", cwd=where)
    assert result.returncode == 0, result.stderr
    return where


@pytest.mark.parametrize("args", READ_ONLY)
def test_reading_without_a_database_says_where_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = run_cli(*args, cwd=tmp_path, columns=200)
    assert result.returncode == 2
    db = (tmp_path / "coinharvest.db").resolve()
    assert result.stderr == (
        f"error: no database at {db} (COINHARVEST_DB); "
        "run 'coinharvest collect' or 'coinharvest run' first\n"
    )
    assert list(tmp_path.iterdir()) == []  # neither the database nor the --out file


@pytest.mark.parametrize("command", ["latest", "runs", "export", "history"])
def test_read_only_help_names_the_default_database(tmp_path: Path, command: str) -> None:
    result = run_cli(command, "--help", cwd=tmp_path, columns=80)
    assert "./coinharvest.db in the current directory" in " ".join(result.stdout.split())


def _first_table(stdout: str) -> str:
    return stdout.split("└")[0]


@pytest.mark.parametrize("columns", [80, 200])
def test_tables_fit_the_terminal_and_cut_nothing(collected: Path, columns: int) -> None:
    run_id = json.loads(run_cli("runs", "--json", cwd=collected).stdout)[0]["run_id"]
    runs = run_cli("runs", cwd=collected, columns=columns).stdout
    latest = run_cli("latest", "BTC", cwd=collected, columns=columns).stdout
    sources = _first_table(run_cli("sources", cwd=collected, columns=columns).stdout)
    history = run_cli("history", "BTC", "-m", "market_cap_usd", cwd=collected, columns=columns)
    assert "$1," in history.stdout and "T" not in history.stdout.split("┩")[1]  # in full
    detail = run_cli("runs", "show", run_id, cwd=collected, columns=columns).stdout
    for text in (runs, latest, sources, history.stdout, detail):
        assert max(len(line) for line in text.splitlines()) <= columns
        assert "…" not in text
    assert run_id in runs
    assert "https://api.coingecko.com/api/v3" in sources
    rows = {line.split("│")[2].strip(): line for line in latest.splitlines() if "│ BTC" in line}
    assert "e+" not in latest
    assert rows["price_usd"].split("│")[3].strip().startswith("$")
    height = json.loads(run_cli("latest", "BTC", "--json", cwd=collected).stdout)
    raw = next(r["value"] for r in height if r["metric"] == "block_height")
    assert f"{round(raw):,}" in rows["block_height"]  # exact, with separators


def test_runs_show_lists_coins_in_coin_order(collected: Path) -> None:
    detail = json.loads(run_cli("runs", "show", "", "--json", cwd=collected).stdout)
    assert [c["symbol"] for c in detail["coins"]] == [c.symbol for c in load_coins()]


def test_csv_export_writes_booleans_as_json_does(collected: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(run_cli("export", cwd=collected).stdout)))
    assert rows and {r["estimated"] for r in rows} <= {"true", "false"}
    assert "true" in {r["estimated"] for r in rows}  # derived estimates exist


def test_version_flag_and_completion(tmp_path: Path) -> None:
    for flag in ("--version", "-V"):
        version = run_cli(flag, cwd=tmp_path)
        assert version.returncode == 0 and version.stdout.startswith("coinharvest ")
    help_text = run_cli("--help", cwd=tmp_path, columns=80).stdout
    assert "--install-completion" in help_text and "--version" in help_text
    completion = run_cli("--show-completion", "bash", cwd=tmp_path)
    assert completion.returncode == 0 and "complete" in completion.stdout


COMMANDS = [
    (), ("collect",), ("demo",), ("sources",), ("verify",), ("coins",), ("version",), ("run",),
    ("serve",), ("latest",), ("history",), ("export",), ("emulator",), ("runs",),
    ("runs", "show"), ("db",), ("db", "upgrade"), ("limits",), ("limits", "show"),
    ("limits", "reset"),
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_no_type_labels_on_flags_and_fits_80_columns(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = run_cli(*command, "--help", cwd=tmp_path, columns=80)
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    # Reflowed: a prose line is never followed by a one- or two-word orphan line.
    prose = [line.strip() for line in lines if line.startswith(" ") and "│" not in line]
    assert not any(0 < len(line.split()) <= 2 and not line.endswith(".") for line in prose[1:])


def test_serve_help_does_not_talk_about_runs(tmp_path: Path) -> None:
    text = run_cli("serve", "--help", cwd=tmp_path, columns=80).stdout.lower()
    assert " run" not in text.replace("coinharvest serve", "")
