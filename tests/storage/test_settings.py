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


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql+asyncpg://u:secret@127.0.0.1:abc/x",  # non-numeric port
        "postgresql+asyncpg://u:secret@[::1/x",  # unclosed IPv6 bracket
        "garbage",
        "sqlite+aiosqlite:///",  # in-memory: would keep nothing
        "sqlite+aiosqlite:///:memory:",
    ],
)
def test_unusable_urls_are_one_line_config_errors(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalise_url(raw)
    message = str(info.value)
    assert message.startswith("DATABASE_URL=") and "\n" not in message
    assert "secret" not in message
