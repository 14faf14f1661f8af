"""The storage commands through Typer: output, JSON, and one-line errors with exit status 2."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from coinharvest.cli.storage_commands import register
from coinharvest.config import load_settings
from coinharvest.errors import StoreError
from coinharvest.storage import Store, open_store
from coinharvest.timeparse import parse_since

from .storekit import T0, minutes, result

runner = CliRunner()


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("DATABASE_URL", "COINHARVEST_DB"):
        monkeypatch.delenv(name, raising=False)


def invoke(*args: str, **env: str) -> tuple[int, str, str]:
    res = runner.invoke(make_app(), list(args), env={"COLUMNS": "200", **env})
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def filled_db(tmp_path: Path) -> str:
    db = tmp_path / "filled.db"

    async def fill() -> None:
        async with await Store.from_url(f"sqlite+aiosqlite:///{db}") as store:
            await store.run_started("run0001", "manual", T0, [])
            await store.coin_completed("run0001", result("BTC", 3, value=91234.5))
            await store.coin_completed("run0001", result("ETH", 2, at=T0 + minutes(1)))

    asyncio.run(fill())
    return str(db)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- happy paths


def test_runs_latest_history_export(filled_db: str, tmp_path: Path) -> None:
    env = {"COINHARVEST_DB": filled_db}
    code, out, _ = invoke("runs", **env)
    assert code == 0 and "run0001" in out and "running" in out
    code, out, _ = invoke("runs", "--json", "--limit", "1", **env)
    assert code == 0 and json.loads(out)[0]["run_id"] == "run0001"
    code, out, _ = invoke("runs", "show", "run0", **env)
    assert code == 0 and "BTC" in out and "Request timeline" in out
    code, out, _ = invoke("latest", "btc", **env)
    assert code == 0 and "91,234.5" in out and "ETH" not in out
    code, out, _ = invoke("latest", "--json", **env)
    got = json.loads(out)
    assert {(r["symbol"], r["metric"]) for r in got} == {
        ("BTC", "m0"),
        ("BTC", "m1"),
        ("BTC", "m2"),
        ("ETH", "m0"),
        ("ETH", "m1"),
    }
    assert all(r["source"] == "coingecko" and r["confidence"] == "high" for r in got)
    code, out, _ = invoke(
        "history",
        "BTC",
        "--metric",
        "m1",
        "--since",
        (T0 - timedelta(days=1)).strftime("%Y-%m-%d"),
        "--json",
        **env,
    )
    assert code == 0 and [p["value"] for p in json.loads(out)] == [91235.5]
    target = tmp_path / "out.csv"
    code, _, err = invoke("export", "--format", "csv", "--out", str(target), **env)
    assert code == 0 and "exported 5 observations" in err
    assert len(list(csv.DictReader(target.open()))) == 5
    code, out, _ = invoke("export", "--format", "json", "--since", "1d", **env)
    assert code == 0 and len(json.loads(out)) == 5
    code, out, _ = invoke("db", "upgrade", **env)
    assert code == 0 and "revision 0007" in out


def test_unknown_run_and_bad_since_exit_2(filled_db: str) -> None:
    code, _, err = invoke("runs", "show", "nope", COINHARVEST_DB=filled_db)
    assert code == 2 and "no run 'nope'" in err
    code, _, err = invoke(
        "history", "BTC", "-m", "m0", "--since", "last tuesday", COINHARVEST_DB=filled_db
    )
    assert code == 2 and "--since" in err


def test_huge_numbers_are_usage_errors_not_tracebacks(filled_db: str) -> None:
    # Issue 12, item 7: `runs -n 99999999999999999999` was an OverflowError from SQLite.
    for limit in ("99999999999999999999", "10001", "0", "-5"):
        code, _, err = invoke("runs", "-n", limit, COINHARVEST_DB=filled_db)
        assert code == 2 and "Invalid value for '--limit' / '-n'" in err, (limit, err)
    code, out, _ = invoke("runs", "--json", "-n", "10000", COINHARVEST_DB=filled_db)
    assert code == 0 and len(json.loads(out)) == 1


@pytest.mark.parametrize("command", [("history", "BTC", "-m", "m0"), ("export",)])
def test_since_reaching_before_year_1_is_one_usage_error(
    filled_db: str, command: tuple[str, ...]
) -> None:
    code, _, err = invoke(*command, "--since", "1000000d", COINHARVEST_DB=filled_db)
    assert code == 2 and "Traceback" not in err
    assert "'1000000d' reaches back too far" in err
    assert "--since" in err


def test_history_of_an_unknown_coin_or_metric_says_so(filled_db: str) -> None:
    code, _, err = invoke("history", "NOPE", "-m", "m0", COINHARVEST_DB=filled_db)
    assert code == 2 and "no observations of coin 'NOPE'" in err
    code, _, err = invoke("history", "BTC", "-m", "nope", COINHARVEST_DB=filled_db)
    assert code == 2 and "BTC has no metric 'nope' (known: " in err


def test_parse_since() -> None:
    assert parse_since("2h", now=T0) == T0 - minutes(120)
    fixed = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert parse_since("2026-11-28T10:00", now=T0) == fixed
    assert parse_since("2026-11-28T11:00+01:00") == fixed
    assert parse_since(None) is None


# --------------------------------------------------------------------------- bad databases


def one_error_line(code: int, out: str, err: str) -> str:
    assert code == 2, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unreachable_postgresql_is_one_line_without_the_password() -> None:
    url = f"postgresql+asyncpg://app:s3cret@127.0.0.1:{free_port()}/coins"
    line = one_error_line(*invoke("runs", DATABASE_URL=url))
    assert "cannot open database postgresql+asyncpg://app:***@127.0.0.1" in line
    assert "s3cret" not in line


def test_read_only_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "ro.db").touch()
    url = f"sqlite+aiosqlite:///file:{tmp_path / 'ro.db'}?mode=ro&uri=true"
    line = one_error_line(*invoke("db", "upgrade", DATABASE_URL=url))
    assert "readonly database" in line or "read-only" in line


def test_missing_directory_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(*invoke("db", "upgrade", COINHARVEST_DB=str(tmp_path / "no" / "x.db")))
    assert "does not exist" in line
    # A read-only command does not try: there is no database to read.
    line = one_error_line(*invoke("latest", COINHARVEST_DB=str(tmp_path / "no" / "x.db")))
    assert line.startswith(f"error: no database at {tmp_path / 'no' / 'x.db'} (COINHARVEST_DB)")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u:pw@h/db", "DATABASE_URL='mysql://u:***@h/db' is invalid"),
        ("not a url", "is invalid: must be a sqlite+aiosqlite"),
        ("postgresql+psycopg2://u@h/db", "use the async driver postgresql+asyncpg://"),
    ],
)
def test_bad_database_url_is_one_line(url: str, says: str) -> None:
    assert says in one_error_line(*invoke("runs", DATABASE_URL=url))


async def test_open_store_refuses_a_read_only_database(filled_db: str) -> None:
    url = f"sqlite+aiosqlite:///file:{filled_db}?mode=ro&uri=true"
    settings = load_settings({"DATABASE_URL": url}, env_file=None)
    with pytest.raises(StoreError, match="is not writable: attempt to write a readonly") as info:
        await open_store(settings)
    assert "\n" not in str(info.value)


def test_cli_unreachable_database_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "COINHARVEST_DB"}}
    env["DATABASE_URL"] = f"postgresql+asyncpg://app@127.0.0.1:{free_port()}/coins"
    proc = subprocess.run(
        [sys.executable, "-m", "coinharvest", "runs"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot open database" in proc.stderr
