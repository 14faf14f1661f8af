"""Settings: defaults, environment and .env, one-line errors for every bad value, overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coinharvest.coins import BUILTIN_SOURCE_NAMES
from coinharvest.config import (
    SOURCE_ENV_PREFIX,
    Settings,
    SourceOverrides,
    deprecation_warnings,
    load_settings,
)
from coinharvest.errors import ConfigError
from coinharvest.models import SourceLimits

PREFIXES = sorted(SOURCE_ENV_PREFIX.values())


def load(**env: str) -> Settings:
    """Settings from `env` alone: no os.environ, no .env file."""
    return load_settings(env, env_file=None)


def config_error(**env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(**env)
    return str(info.value)


# --- defaults and good values ------------------------------------------------------------


def test_defaults() -> None:
    settings = load()
    assert settings.max_collection_concurrency == 5
    assert settings.collection_interval_minutes == 60
    assert settings.delay_between_coins_ms is None
    assert settings.coins_file is None
    assert settings.debug == ""
    assert settings.http_timeout_seconds == 30
    assert settings.max_retries == 4
    assert settings.coingecko_plan == "public"
    for name in SOURCE_ENV_PREFIX:
        assert settings.source(name) == SourceOverrides()


def test_good_values_are_parsed() -> None:
    settings = load(
        MAX_COLLECTION_CONCURRENCY="1",
        COLLECTION_INTERVAL_MINUTES="0.5",
        DELAY_BETWEEN_COINS_MS="5000",
        COINS_FILE="my/coins.toml",
        DEBUG="scheduler:*",
        HTTP_TIMEOUT_SECONDS="2.5",
        MAX_RETRIES="1",
        COINGECKO_PLAN=" Demo ",
    )
    assert settings.max_collection_concurrency == 1
    assert settings.collection_interval_minutes == 0.5
    assert settings.delay_between_coins_ms == 5000
    assert settings.coins_file == Path("my/coins.toml")
    assert settings.debug == "scheduler:*"
    assert settings.http_timeout_seconds == 2.5
    assert settings.max_retries == 1
    assert settings.coingecko_plan == "demo"


def test_empty_value_means_unset() -> None:
    settings = load(MAX_COLLECTION_CONCURRENCY="", MAX_COINGECKO_CONCURRENCY="", DEBUG="")
    assert settings.max_collection_concurrency == 5
    assert settings.source("coingecko").max_concurrency is None


def test_names_are_case_insensitive() -> None:
    assert load(max_collection_concurrency="3").max_collection_concurrency == 3


@pytest.mark.parametrize("prefix", PREFIXES)
def test_per_source_settings(prefix: str) -> None:
    name = next(n for n, p in SOURCE_ENV_PREFIX.items() if p == prefix)
    settings = load(
        **{
            f"{prefix}_API_KEY": "k-123",
            f"{prefix}_BASE_URL": "http://127.0.0.1:8080/api",
            f"MAX_{prefix}_CONCURRENCY": "2",
            f"{prefix}_MIN_INTERVAL_MS": "1500",
            f"{prefix}_RATE_LIMIT_PER_MINUTE": "30",
            f"{prefix}_BATCH_SIZE": "100",
        }
    )
    assert settings.source(name) == SourceOverrides(
        api_key="k-123",
        base_url="http://127.0.0.1:8080/api",
        max_concurrency=2,
        min_interval_ms=1500,
        rate_limit_per_minute=30,
        batch_size=100,
    )
    others = [other for other in SOURCE_ENV_PREFIX if other != name]
    assert all(settings.source(other) == SourceOverrides() for other in others)


def test_source_names_match_the_builtin_sources() -> None:
    assert set(SOURCE_ENV_PREFIX) == set(BUILTIN_SOURCE_NAMES)
    assert SOURCE_ENV_PREFIX["3xpl"] == "THREEXPL"


def test_unknown_source_has_no_overrides() -> None:
    assert load(COINGECKO_BATCH_SIZE="5").source("simulated") == SourceOverrides()


def test_nano_rpc_url_is_an_alias_of_nano_base_url() -> None:
    assert load(NANO_RPC_URL="http://node:7076").source("nano").base_url == "http://node:7076"
    both = load(NANO_RPC_URL="http://rpc:1", NANO_BASE_URL="http://base:2")
    assert both.source("nano").base_url == "http://base:2"


def test_api_keys_are_never_shown() -> None:
    settings = load(COINGECKO_API_KEY="CG-secret-key", THREEXPL_API_KEY="xpl-secret-key")
    overrides = settings.source("coingecko")
    assert overrides.api_key == "CG-secret-key"
    for text in (repr(settings), str(settings), repr(overrides), str(overrides)):
        assert "secret-key" not in text


# --- .env file -----------------------------------------------------------------------------


def test_env_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nMAX_COLLECTION_CONCURRENCY=3\nBLOCKCHAIR_RATE_LIMIT_PER_MINUTE=20\n"
        "DATABASE_URL=sqlite+aiosqlite:///x.db\nMAX_RETRIES=\n",
        encoding="utf-8",
    )
    settings = load_settings({}, env_file=env_file)
    assert settings.max_collection_concurrency == 3
    assert settings.source("blockchair").rate_limit_per_minute == 20
    assert settings.max_retries == 4  # blank in .env = unset; unknown DATABASE_URL ignored


def test_environment_beats_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MAX_COLLECTION_CONCURRENCY=3\nMAX_RETRIES=2\n", encoding="utf-8")
    settings = load_settings({"MAX_COLLECTION_CONCURRENCY": "7"}, env_file=env_file)
    assert settings.max_collection_concurrency == 7
    assert settings.max_retries == 2


def test_bad_value_in_env_file_is_reported(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MAX_COLLECTION_CONCURRENCY=zero\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^MAX_COLLECTION_CONCURRENCY='zero' is invalid"):
        load_settings({}, env_file=env_file)


def test_missing_env_file_is_ignored(tmp_path: Path) -> None:
    assert load_settings({}, env_file=tmp_path / "absent.env").max_retries == 4


def test_default_reads_os_environ_and_dot_env_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("MAX_RETRIES=2\nMAX_COLLECTION_CONCURRENCY=9\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAX_COLLECTION_CONCURRENCY", "4")
    settings = load_settings()
    assert settings.max_collection_concurrency == 4
    assert settings.max_retries == 2


def test_a_given_mapping_hides_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_COLLECTION_CONCURRENCY", "4")
    assert load_settings({}, env_file=None).max_collection_concurrency == 5


# --- bad values: one line, naming variable, value and what is allowed ----------------------

INT_GE_1 = "must be an integer ≥ 1"
NUMBER_GT_0 = "must be a finite number > 0"
NUMBER_GE_0 = "must be a finite number ≥ 0"
URL = "must be an http:// or https:// URL"

BAD_VALUES = [
    ("MAX_COLLECTION_CONCURRENCY", "0", INT_GE_1),
    ("MAX_COLLECTION_CONCURRENCY", "abc", INT_GE_1),
    ("MAX_COLLECTION_CONCURRENCY", "-1", INT_GE_1),
    ("MAX_COLLECTION_CONCURRENCY", "2.5", INT_GE_1),
    ("COLLECTION_INTERVAL_MINUTES", "-5", NUMBER_GT_0),
    ("COLLECTION_INTERVAL_MINUTES", "0", NUMBER_GT_0),
    ("COLLECTION_INTERVAL_MINUTES", "hourly", NUMBER_GT_0),
    ("COLLECTION_INTERVAL_MINUTES", "inf", NUMBER_GT_0),
    ("COLLECTION_INTERVAL_MINUTES", "nan", NUMBER_GT_0),
    ("DELAY_BETWEEN_COINS_MS", "-1", NUMBER_GE_0),
    ("DELAY_BETWEEN_COINS_MS", "5s", NUMBER_GE_0),
    ("HTTP_TIMEOUT_SECONDS", "0", NUMBER_GT_0),
    ("MAX_RETRIES", "0", INT_GE_1),
    ("MAX_RETRIES", "many", INT_GE_1),
    ("COINGECKO_PLAN", "gold", "must be one of 'public', 'demo', 'pro'"),
    ("COINGECKO_RATE_LIMIT_PER_MINUTE", "thirty", INT_GE_1),
    ("COINGECKO_BASE_URL", "api.coingecko.com", URL),
    ("NANO_RPC_URL", "ftp://node", URL),
]


@pytest.mark.parametrize(("name", "value", "allowed"), BAD_VALUES)
def test_bad_value_is_one_line_naming_variable_value_and_allowed(
    name: str, value: str, allowed: str
) -> None:
    message = config_error(**{name: value})
    assert "\n" not in message
    assert name in message
    assert f"={value!r} is invalid: {allowed}" in message


def test_bad_value_message_exactly() -> None:
    message = config_error(MAX_COLLECTION_CONCURRENCY="abc")
    assert message == "MAX_COLLECTION_CONCURRENCY='abc' is invalid: must be an integer ≥ 1"


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(
    ("template", "value", "allowed"),
    [
        ("MAX_{}_CONCURRENCY", "0", INT_GE_1),
        ("MAX_{}_CONCURRENCY", "two", INT_GE_1),
        ("{}_MIN_INTERVAL_MS", "-10", NUMBER_GE_0),
        ("{}_MIN_INTERVAL_MS", "1s", NUMBER_GE_0),
        ("{}_RATE_LIMIT_PER_MINUTE", "0", INT_GE_1),
        ("{}_RATE_LIMIT_PER_MINUTE", "lots", INT_GE_1),
        ("{}_BATCH_SIZE", "-1", INT_GE_1),
        ("{}_BASE_URL", "localhost:8080", URL),
    ],
)
def test_bad_per_source_value(prefix: str, template: str, value: str, allowed: str) -> None:
    name = template.format(prefix)
    shown = "NANO_BASE_URL/NANO_RPC_URL" if name == "NANO_BASE_URL" else name
    assert config_error(**{name: value}) == f"{shown}={value!r} is invalid: {allowed}"


def test_every_validated_setting_rejects_garbage() -> None:
    # Free text; DATABASE_URL is a secret (it may hold a password), checked when storage opens.
    free_text = {"debug", "coins_file", "coinharvest_db", "database_url"}
    for field_name in Settings.model_fields:
        if field_name in free_text or field_name.endswith("_api_key"):
            continue
        message = config_error(**{field_name.upper(): "not valid!"})
        assert " is invalid: must be " in message, field_name


def test_several_bad_values_stay_on_one_line() -> None:
    message = config_error(MAX_COLLECTION_CONCURRENCY="0", COINGECKO_PLAN="gold")
    assert "\n" not in message
    assert "MAX_COLLECTION_CONCURRENCY='0'" in message
    assert "COINGECKO_PLAN='gold'" in message


def test_validation_error_is_not_chained() -> None:
    with pytest.raises(ConfigError) as info:
        load(MAX_RETRIES="x")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


# --- overrides applied to limits ------------------------------------------------------------

DEFAULTS = SourceLimits(max_concurrency=3, min_interval_s=2.0, rate_per_window=30, window_s=60)


def test_no_overrides_keep_the_defaults() -> None:
    assert SourceOverrides().apply(DEFAULTS) == DEFAULTS


def test_overrides_apply_to_limits() -> None:
    overrides = load(
        MAX_BLOCKCHAIR_CONCURRENCY="1",
        BLOCKCHAIR_MIN_INTERVAL_MS="250",
        BLOCKCHAIR_RATE_LIMIT_PER_MINUTE="12",
    ).source("blockchair")
    assert overrides.apply(DEFAULTS) == SourceLimits(
        max_concurrency=1, min_interval_s=0.25, rate_per_window=12, window_s=60.0
    )


def test_rate_override_sets_a_60_second_window() -> None:
    scaled = SourceLimits(max_concurrency=2, min_interval_s=0.1, rate_per_window=None, window_s=3)
    limits = SourceOverrides(rate_limit_per_minute=6).apply(scaled)
    assert (limits.rate_per_window, limits.window_s) == (6, 60.0)
    assert (limits.max_concurrency, limits.min_interval_s) == (2, 0.1)


def test_partial_override_keeps_the_rest() -> None:
    limits = SourceOverrides(min_interval_ms=0).apply(DEFAULTS)
    assert limits == SourceLimits(max_concurrency=3, min_interval_s=0.0, rate_per_window=30)


# --- deprecation -----------------------------------------------------------------------------


def test_no_deprecation_warning_by_default() -> None:
    assert deprecation_warnings(load()) == []


def test_delay_between_coins_is_deprecated_with_its_replacement() -> None:
    [warning] = deprecation_warnings(load(DELAY_BETWEEN_COINS_MS="5000"))
    assert "\n" not in warning
    assert "DELAY_BETWEEN_COINS_MS" in warning
    assert "deprecated" in warning
    assert "after each job" in warning
    assert "global slot" in warning
    assert "<SRC>_MIN_INTERVAL_MS" in warning


# --- through the CLI (DESIGN §8: bad value → one line, exit status 2, no traceback) ----------

CLI_CASES = [
    ("MAX_COLLECTION_CONCURRENCY", "0"),
    ("MAX_COLLECTION_CONCURRENCY", "abc"),
    ("MAX_COLLECTION_CONCURRENCY", "-1"),
    ("COLLECTION_INTERVAL_MINUTES", "-5"),
    ("COINGECKO_RATE_LIMIT_PER_MINUTE", "lots"),
]


@pytest.mark.parametrize(("name", "value"), CLI_CASES)
def test_cli_bad_value_exits_2_with_one_line(tmp_path: Path, name: str, value: str) -> None:
    env = {k: v for k, v in os.environ.items() if not _is_our_variable(k)}
    env[name] = value
    result = subprocess.run(
        [sys.executable, "-m", "coinharvest", "collect"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if f"{name}={value!r}" in line]
    assert len(lines) == 1, output
    assert "is invalid: must be" in lines[0]


def _is_our_variable(name: str) -> bool:
    upper = name.upper()
    return upper in {field.upper() for field in Settings.model_fields} or upper == "NANO_RPC_URL"
