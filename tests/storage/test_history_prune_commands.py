"""``history`` (newest 50, --limit, --all streamed, --json) and ``db prune`` through Typer,
over a real SQLite file filled at fixed times (2025: older than any age asked here)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import typer
from serieskit import T0, fill_run, secs
from typer.testing import CliRunner

from coinharvest.cli.storage_commands import register
from coinharvest.storage import open_database

runner = CliRunner()


@pytest.fixture
def db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "COINHARVEST_DB", "RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "h.db"

    async def fill() -> None:
        db = await open_database(f"sqlite+aiosqlite:///{path}")
        for r in range(3):  # 3 runs x 100 points, one job event each
            at = T0 + secs(1000 * r)
            await fill_run(db, f"r{r}", at, [(at + secs(i), 100.0 * r + i) for i in range(100)])
        await db.dispose()

    asyncio.run(fill())
    return {"COINHARVEST_DB": str(path), "COLUMNS": "200"}


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    register(app)
    res = runner.invoke(app, list(args), env=env)
    return res.exit_code, res.stdout, res.stderr


def test_history_shows_the_newest_50_oldest_first(db_env: dict[str, str]) -> None:
    code, out, _ = invoke(db_env, "history", "BTC", "-m", "price_usd", "--json")
    assert code == 0
    values = [p["value"] for p in json.loads(out)]
    assert values == [250.0 + i for i in range(50)]
    code, out, _ = invoke(db_env, "history", "BTC", "-m", "price_usd", "--json", "--limit", "3")
    assert [p["value"] for p in json.loads(out)] == [297.0, 298.0, 299.0]
    code, out, _ = invoke(db_env, "history", "BTC", "-m", "price_usd", "-n", "2")
    assert code == 0 and "$298.00" in out and "$299.00" in out and "$297.00" not in out


def test_history_all_streams_every_value(db_env: dict[str, str]) -> None:
    code, out, _ = invoke(db_env, "history", "BTC", "-m", "price_usd", "--all", "--json")
    assert code == 0
    values = [p["value"] for p in json.loads(out)]
    assert values == sorted(values) and len(set(values)) == 300
    code, out, _ = invoke(db_env, "history", "BTC", "-m", "price_usd", "--all")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "BTC price_usd" and len(lines) == 2 + 300
    assert lines[2].startswith("2025-06-01 00:00:00") and lines[2].endswith("r0")
    code, out, _ = invoke(
        db_env, "history", "BTC", "-m", "price_usd", "--all", "--json", "--since", "2999-01-01"
    )
    assert code == 0 and json.loads(out) == []
    code, _, err = invoke(db_env, "history", "BTC", "-m", "nope", "--all", "--json")
    assert code == 2 and "no metric 'nope'" in err


def test_db_prune_dry_run_then_prune(db_env: dict[str, str]) -> None:
    code, out, _ = invoke(db_env, "db", "prune", "--older-than", "36500d", "--dry-run")
    assert code == 0 and out.startswith("would delete 0 observations, 0 coin results")
    code, out, _ = invoke(db_env, "db", "prune", "--older-than", "2w", "--dry-run")
    # every point is old but the newest (kept for `latest`); 2 coin rows have none left
    assert out.startswith("would delete 299 observations, 2 coin results, 3 job events")
    code, out, _ = invoke(db_env, "db", "prune", "--older-than", "2w")
    assert code == 0 and out.startswith("deleted 299 observations, 2 coin results, 3 job events")
    code, out, _ = invoke(db_env, "history", "BTC", "-m", "price_usd", "--json", "--all")
    assert [p["value"] for p in json.loads(out)] == [299.0]


@pytest.mark.parametrize("age", ["90", "3y", "0d", "-1d", "1e9d", "100001d", ""])
def test_db_prune_refuses_bad_ages(db_env: dict[str, str], age: str) -> None:
    code, _, err = invoke(db_env, "db", "prune", "--older-than", age)
    assert code == 2 and "--older-than" in err and "90d" in err
