"""Which database the settings name: COINHARVEST_DB, DATABASE_URL (wins), driver mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinharvest.config import load_settings
from coinharvest.errors import ConfigError
from coinharvest.storage.database import database_url, normalise_url


def url_for(**env: str) -> str:
    return database_url(load_settings(env, env_file=None))


def test_default_is_coinharvest_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert url_for() == f"sqlite+aiosqlite:///{tmp_path / 'coinharvest.db'}"
    assert url_for(COINHARVEST_DB="data/x.db") == f"sqlite+aiosqlite:///{tmp_path}/data/x.db"


def test_database_url_wins_and_stays_secret() -> None:
    settings = load_settings(
        {"COINHARVEST_DB": "/tmp/x.db", "DATABASE_URL": "postgres://app:pw@db:5432/coins"},
        env_file=None,
    )
    assert database_url(settings) == "postgresql+asyncpg://app:pw@db:5432/coins"
    assert "pw" not in repr(settings)


def test_sync_driver_names_are_mapped_to_async_ones() -> None:
    assert normalise_url("sqlite:////var/x.db") == "sqlite+aiosqlite:////var/x.db"
    assert normalise_url("postgresql://u@h/d") == "postgresql+asyncpg://u@h/d"
    with pytest.raises(ConfigError, match="use the async driver sqlite\\+aiosqlite"):
        normalise_url("sqlite+pysqlite:///x.db")
