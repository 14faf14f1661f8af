"""Settings: defaults, environment and .env, one-line errors for every bad value, overrides."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

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
    assert settings.max_retries == 3  # retries after the first attempt
    assert settings.coingecko_plan == "public"
    assert settings.max_cooldown_seconds == 300
    assert settings.collect_timeout_minutes == 30
    assert settings.max_response_bytes == 8 * 1024 * 1024
    assert settings.breaker_failures == 3
    assert settings.breaker_cooloff_seconds == 30
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
    assert settings.max_retries == 3  # blank in .env = unset; unknown DATABASE_URL ignored


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
    assert load_settings({}, env_file=tmp_path / "absent.env").max_retries == 3


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

CONCURRENCY = "must be an integer from 1 to 1000"
INTERVAL = "must be a number from 0.01 to 10080 (0.6 s to 7 days)"
DELAY = "must be a number from 0 to 600000"
RETRIES = "must be an integer from 0 to 20"
SOURCE_CONCURRENCY = "must be an integer from 1 to 100"
MIN_INTERVAL = "must be a number from 0 to 3600000"
RATE = "must be an integer from 1 to 100000"
BATCH = "must be an integer from 1 to 10000"
URL = "must be an http:// or https:// URL"

BAD_VALUES = [
    ("MAX_COLLECTION_CONCURRENCY", "0", CONCURRENCY),
    ("MAX_COLLECTION_CONCURRENCY", "abc", CONCURRENCY),
    ("MAX_COLLECTION_CONCURRENCY", "-1", CONCURRENCY),
    ("MAX_COLLECTION_CONCURRENCY", "2.5", CONCURRENCY),
    ("COLLECTION_INTERVAL_MINUTES", "-5", INTERVAL),
    ("COLLECTION_INTERVAL_MINUTES", "0", INTERVAL),
    ("COLLECTION_INTERVAL_MINUTES", "hourly", INTERVAL),
    ("COLLECTION_INTERVAL_MINUTES", "inf", INTERVAL),
    ("COLLECTION_INTERVAL_MINUTES", "nan", INTERVAL),
    ("COLLECTION_INTERVAL_MINUTES", "1e-300", INTERVAL),  # would spin the scheduler
    ("DELAY_BETWEEN_COINS_MS", "-1", DELAY),
    ("DELAY_BETWEEN_COINS_MS", "5s", DELAY),
    ("HTTP_TIMEOUT_SECONDS", "0", "must be a number > 0 and ≤ 600"),
    ("MAX_RETRIES", "-1", RETRIES),
    ("MAX_RETRIES", "many", RETRIES),
    ("COINGECKO_PLAN", "gold", "must be one of 'public', 'demo', 'pro'"),
    ("COINGECKO_RATE_LIMIT_PER_MINUTE", "thirty", RATE),
    ("COINGECKO_BASE_URL", "api.coingecko.com", URL),
    ("NANO_RPC_URL", "ftp://node", URL),
    ("MAX_COOLDOWN_SECONDS", "0", "must be a number > 0 and ≤ 86400 (1 day)"),
    ("COLLECT_TIMEOUT_MINUTES", "0", "must be a number > 0 and ≤ 1440 (1 day)"),
    ("MAX_RESPONSE_BYTES", "1023", "must be an integer from 1024 to 1073741824 (1 GiB)"),
    ("MAX_RESPONSE_BYTES", "8MB", "must be an integer from 1024 to 1073741824 (1 GiB)"),
    ("BREAKER_FAILURES", "0", "must be an integer from 1 to 100"),
    ("BREAKER_COOLOFF_SECONDS", "0", "must be a number > 0 and ≤ 3600"),
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
    assert (
        message == "MAX_COLLECTION_CONCURRENCY='abc' is invalid: must be an integer from 1 to 1000"
    )


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(
    ("template", "value", "allowed"),
    [
        ("MAX_{}_CONCURRENCY", "0", SOURCE_CONCURRENCY),
        ("MAX_{}_CONCURRENCY", "two", SOURCE_CONCURRENCY),
        ("MAX_{}_CONCURRENCY", "101", SOURCE_CONCURRENCY),
        ("{}_MIN_INTERVAL_MS", "-10", MIN_INTERVAL),
        ("{}_MIN_INTERVAL_MS", "1s", MIN_INTERVAL),
        ("{}_MIN_INTERVAL_MS", "3600001", MIN_INTERVAL),
        ("{}_MIN_INTERVAL_MS", "1e308", MIN_INTERVAL),
        ("{}_RATE_LIMIT_PER_MINUTE", "0", RATE),
        ("{}_RATE_LIMIT_PER_MINUTE", "lots", RATE),
        ("{}_RATE_LIMIT_PER_MINUTE", "100001", RATE),
        ("{}_BATCH_SIZE", "-1", BATCH),
        ("{}_BATCH_SIZE", "10001", BATCH),
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


# --- upper bounds: no number means "wait forever" (issue 12, item 8) -------------------------

#: (variable, the largest value allowed, a value just above it, what is allowed)
UPPER_BOUNDS = [
    ("MAX_COLLECTION_CONCURRENCY", "1000", "1001", CONCURRENCY),
    ("COLLECTION_INTERVAL_MINUTES", "10080", "10080.5", INTERVAL),
    ("DELAY_BETWEEN_COINS_MS", "600000", "600001", DELAY),
    ("HTTP_TIMEOUT_SECONDS", "600", "600.1", "must be a number > 0 and ≤ 600"),
    ("MAX_RETRIES", "20", "21", RETRIES),
    ("HTTP_PORT", "65535", "65536", "must be an integer from 0 to 65535"),
    ("RUN_TIMEOUT_MINUTES", "1440", "1441", "must be a number > 0 and ≤ 1440 (1 day)"),
    ("COLLECTION_JITTER_SECONDS", "3600", "3601", "must be a number from 0 to 3600"),
    ("SHUTDOWN_GRACE_SECONDS", "3600", "3601", "must be a number from 0 to 3600"),
    ("MAX_COOLDOWN_SECONDS", "86400", "86401", "must be a number > 0 and ≤ 86400 (1 day)"),
    ("COLLECT_TIMEOUT_MINUTES", "1440", "1441", "must be a number > 0 and ≤ 1440 (1 day)"),
    (
        "MAX_RESPONSE_BYTES",
        "1073741824",
        "1073741825",
        "must be an integer from 1024 to 1073741824 (1 GiB)",
    ),
    ("BREAKER_FAILURES", "100", "101", "must be an integer from 1 to 100"),
    ("BREAKER_COOLOFF_SECONDS", "3600", "3601", "must be a number > 0 and ≤ 3600"),
    ("LEADER_CHECK_SECONDS", "60", "61", "must be a number from 0.05 to 60"),
    ("MAX_COINGECKO_CONCURRENCY", "100", "101", SOURCE_CONCURRENCY),
    ("THREEXPL_MIN_INTERVAL_MS", "3600000", "3600001", MIN_INTERVAL),
    ("BLOCKCHAIR_RATE_LIMIT_PER_MINUTE", "100000", "100001", RATE),
    ("NEARBLOCKS_BATCH_SIZE", "10000", "10001", BATCH),
]


@pytest.mark.parametrize(("name", "top", "above", "allowed"), UPPER_BOUNDS)
def test_upper_bound_is_allowed_and_above_it_is_one_line(
    name: str, top: str, above: str, allowed: str
) -> None:
    load(**{name: top})
    assert config_error(**{name: above}) == f"{name}={above!r} is invalid: {allowed}"


def _is_number(annotation: Any) -> bool:
    """int or float, also inside ``X | None``."""
    return annotation in (int, float) or any(_is_number(a) for a in get_args(annotation))


NUMERIC_SETTINGS = sorted(
    name.upper() for name, info in Settings.model_fields.items() if _is_number(info.annotation)
)


def test_the_numeric_settings_are_all_found() -> None:
    assert len(NUMERIC_SETTINGS) == 46, NUMERIC_SETTINGS  # 11 + 5 hardening + 6 × 5 per source
    assert {"MAX_RETRIES", "MAX_RESPONSE_BYTES", "NANO_BATCH_SIZE"} <= set(NUMERIC_SETTINGS)


@pytest.mark.parametrize("name", NUMERIC_SETTINGS)
@pytest.mark.parametrize("value", ["1e308", "inf", "-inf", "nan", "99999999999999999999"])
def test_every_numeric_setting_refuses_huge_and_non_finite_values(name: str, value: str) -> None:
    message = config_error(**{name: value})
    assert "\n" not in message
    assert re.fullmatch(
        rf"{name}={re.escape(repr(value))} is invalid: must be .*(to|≤) \d+.*", message
    )


def test_max_retries_zero_means_no_retries_and_is_allowed() -> None:
    assert load(MAX_RETRIES="0").max_retries == 0
    assert load(MAX_RETRIES="20").max_retries == 20


def test_hardening_settings_are_parsed() -> None:
    settings = load(
        MAX_COOLDOWN_SECONDS="90.5",
        COLLECT_TIMEOUT_MINUTES="2.5",
        MAX_RESPONSE_BYTES="1024",
        BREAKER_FAILURES="1",
        BREAKER_COOLOFF_SECONDS="0.25",
    )
    assert settings.max_cooldown_seconds == 90.5
    assert settings.collect_timeout_minutes == 2.5
    assert settings.max_response_bytes == 1024
    assert settings.breaker_failures == 1
    assert settings.breaker_cooloff_seconds == 0.25


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("MAX_BLOCKCYPHER_CONCURRENCY", "101", SOURCE_CONCURRENCY),
        ("BLOCKCYPHER_MIN_INTERVAL_MS", "1e308", MIN_INTERVAL),
        ("BLOCKCYPHER_MIN_INTERVAL_MS", "inf", MIN_INTERVAL),
        ("BLOCKCYPHER_MIN_INTERVAL_MS", "nan", MIN_INTERVAL),
        ("BLOCKCYPHER_RATE_LIMIT_PER_MINUTE", "100001", RATE),
        ("BLOCKCYPHER_BATCH_SIZE", "99999999999999999999", BATCH),
    ],
)
def test_plugin_source_variables_are_bounded_too(name: str, value: str, allowed: str) -> None:
    settings = load(**{name: value})
    with pytest.raises(ConfigError) as info:
        settings.source("blockcypher")
    assert str(info.value) == f"{name}={value!r} is invalid: {allowed}"


def test_plugin_source_variables_at_their_bounds() -> None:
    overrides = load(
        MAX_BLOCKCYPHER_CONCURRENCY="100",
        BLOCKCYPHER_MIN_INTERVAL_MS="3600000",
        BLOCKCYPHER_RATE_LIMIT_PER_MINUTE="100000",
        BLOCKCYPHER_BATCH_SIZE="10000",
    ).source("blockcypher")
    assert overrides == SourceOverrides(
        max_concurrency=100,
        min_interval_ms=3_600_000,
        rate_limit_per_minute=100_000,
        batch_size=10_000,
    )


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
    ("DELAY_BETWEEN_COINS_MS", "1e308"),  # hung `collect` before it was bounded
    ("COLLECTION_JITTER_SECONDS", "inf"),
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


def test_an_api_key_with_a_trailing_newline_is_refused_without_showing_it() -> None:
    secret = "SECRET-key-0123456789\n"
    with pytest.raises(ConfigError) as info:
        load_settings({"COINGECKO_API_KEY": secret}, None)
    assert str(info.value).startswith("COINGECKO_API_KEY='***' is invalid")
    assert "SECRET" not in str(info.value) and "trailing newline" in str(info.value)
