"""Settings: read once at start-up from the environment and a ``.env`` file, then passed down.

Names are the seed's, unchanged (``MAX_COLLECTION_CONCURRENCY``, ``COLLECTION_INTERVAL_MINUTES``,
``DELAY_BETWEEN_COINS_MS``), plus per source ``SRC`` in COINGECKO, THREEXPL, BLOCKCHAIR,
NEARBLOCKS, NANO: ``<SRC>_API_KEY``, ``<SRC>_BASE_URL``, ``MAX_<SRC>_CONCURRENCY``,
``<SRC>_MIN_INTERVAL_MS``, ``<SRC>_RATE_LIMIT_PER_MINUTE``, ``<SRC>_BATCH_SIZE``,
``<SRC>_QUOTA_PER_DAY``, ``<SRC>_QUOTA_PER_MONTH``, each optional (unset: the source's default).

Contracts:

- The environment beats the ``.env`` file; an empty value (``MAX_RETRIES=``) counts as unset, so
  a copied ``.env.example`` with blank lines changes nothing. Unknown variables are ignored.
- A bad value raises `ConfigError` with one line naming the variable, the value and what is
  allowed: ``MAX_COLLECTION_CONCURRENCY='abc' is invalid: must be an integer from 1 to 1000``.
  Several bad values are joined on that one line with ``; ``.
- Every number has an upper bound (the types in `coinharvest.settings_types`): ``1e308``,
  ``inf`` and ``nan`` are bad values, never "wait forever".
- API keys are `SecretStr`: they never appear in a repr, a log line or an error message.
- Only this module (and the CLI) read the environment; core code receives `Settings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import PrivateAttr, SecretStr, TypeAdapter, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from coinharvest.errors import ConfigError
from coinharvest.models import SourceLimits
from coinharvest.settings_sources import SourceFields
from coinharvest.settings_types import (
    BatchSize,
    BreakerFailures,
    CheckSeconds,
    CoingeckoPlan,
    CooldownSeconds,
    CooloffSeconds,
    DelayMs,
    GlobalConcurrency,
    GraceSeconds,
    Host,
    HostList,
    IntervalMinutes,
    JitterSeconds,
    LogFormatName,
    LogLevelName,
    MinIntervalMs,
    Plan,
    PluginSpecs,
    Port,
    QuotaCount,
    RatePerMinute,
    ResponseBytes,
    RetentionDays,
    Retries,
    RunMinutes,
    SourceConcurrency,
    Switch,
    TimeoutSeconds,
    Token,
    Url,
    allowed_text_of,
    describe_errors,
)

__all__ = [
    "SOURCE_ENV_PREFIX",
    "CoingeckoPlan",
    "Settings",
    "SourceOverrides",
    "deprecation_warnings",
    "load_settings",
    "plugin_env_prefix",
]

#: Source name used inside the program → prefix of its environment variables.
SOURCE_ENV_PREFIX: Mapping[str, str] = {
    "coingecko": "COINGECKO",
    "3xpl": "THREEXPL",
    "blockchair": "BLOCKCHAIR",
    "nearblocks": "NEARBLOCKS",
    "nano": "NANO",
}

#: The environment mapping `load_settings` was given; None means `os.environ`.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("coinharvest_environ", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Same normalisation as the stock source: case-insensitive names, empty = unset.
        return {
            key.lower(): value
            for key, value in self._environ.items()
            if not (self.env_ignore_empty and value == "")
        }


@dataclass(frozen=True, slots=True)
class SourceOverrides:
    """What the user set for one source; None everywhere means "use the source's default".

    `api_key` is excluded from the repr so a logged or printed override never shows it.
    """

    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    max_concurrency: int | None = None
    min_interval_ms: float | None = None
    rate_limit_per_minute: int | None = None
    batch_size: int | None = None
    quota_per_day: int | None = None
    quota_per_month: int | None = None

    def apply(self, defaults: SourceLimits) -> SourceLimits:
        """`defaults` with every set override applied; unset ones keep the default.

        ``min_interval_ms`` becomes ``min_interval_s``; ``rate_limit_per_minute`` becomes
        ``rate_per_window`` over a 60 s window. `batch_size`, `base_url` and `api_key` are not
        limits: the source reads them itself.
        """
        changes: dict[str, Any] = {}
        if self.max_concurrency is not None:
            changes["max_concurrency"] = self.max_concurrency
        if self.min_interval_ms is not None:
            changes["min_interval_s"] = self.min_interval_ms / 1000.0
        if self.rate_limit_per_minute is not None:
            changes["rate_per_window"] = self.rate_limit_per_minute
            changes["window_s"] = 60.0
        # A quota of 0 turns the source's published quota off.
        if self.quota_per_day is not None:
            changes["quota_per_day"] = self.quota_per_day or None
        if self.quota_per_month is not None:
            changes["quota_per_month"] = self.quota_per_month or None
        return replace(defaults, **changes)


class Settings(SourceFields, BaseSettings):
    """Every setting, validated; build it with `load_settings` (injectable environment,
    one-line `ConfigError`). ``Settings()`` alone reads ``os.environ`` and ``./.env`` and
    raises pydantic's ValidationError."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    #: Jobs in flight across all sources; 1 = one job at a time (sequential).
    max_collection_concurrency: GlobalConcurrency = 5
    #: Minutes between scheduled runs in service mode.
    collection_interval_minutes: IntervalMinutes = 60.0
    #: Deprecated: pause after each job before its global slot takes the next one.
    delay_between_coins_ms: DelayMs | None = None
    #: Coins file (TOML); None = the packaged default.
    coins_file: Path | None = None
    #: Comma-separated debug namespace patterns (``scheduler:*``, ``source:coingecko,limiter``).
    debug: str = ""
    #: Level of namespaces DEBUG does not name; log lines as ``text`` or ``json`` (logformat.py).
    log_level: LogLevelName = "info"
    log_format: LogFormatName = "text"
    #: Timeout of one HTTP request.
    http_timeout_seconds: TimeoutSeconds = 30.0
    #: Retries of a job AFTER its first attempt, for transient errors and 429s (0 = no
    #: retries): a job gets at most MAX_RETRIES + 1 attempts.
    max_retries: Retries = 3
    #: Longest pause a server's Retry-After / x-ratelimit-reset may impose; longer ones are capped.
    max_cooldown_seconds: CooldownSeconds = 300.0
    #: Deadline of a ``coinharvest collect`` run, so it always ends.
    collect_timeout_minutes: RunMinutes = 30.0
    #: Most bytes (decompressed) read from one answer of a source.
    max_response_bytes: ResponseBytes = 8 * 1024 * 1024
    #: Connection failures in a row that open a source's circuit (its jobs then fail at once).
    breaker_failures: BreakerFailures = 3
    #: How long an open circuit waits before one probe request decides.
    breaker_cooloff_seconds: CooloffSeconds = 30.0
    #: Learn each source's in-flight limit from response times and its rate from 429s and
    #: rate-limit headers, below the configured limits (off: the configured limits as they are).
    adaptive_limits: Switch = True
    #: CoinGecko plan: picks the host and the key header.
    coingecko_plan: Plan = "public"
    #: Plug-in sources: ``package.module:ClassName`` entries separated by commas.
    extra_sources: PluginSpecs = ""
    #: Raw per-source variables (``<NAME>_*``, ``MAX_<NAME>_CONCURRENCY``) for plug-in sources.
    _plugin_environ: dict[str, str] = PrivateAttr(default_factory=dict)
    #: SQLite database file, used when DATABASE_URL is unset.
    coinharvest_db: Path = Path("coinharvest.db")
    #: Database URL (SQLAlchemy form); wins over COINHARVEST_DB. Secret: it may hold a
    #: password. Checked when storage opens (`coinharvest.storage.database.normalise_url`).
    database_url: SecretStr | None = None
    #: Days of observations, coin results and job events kept (0 = forever; `storage.retention`).
    retention_days: RetentionDays = 0

    #: Service mode (``coinharvest run`` / ``serve``): address of the HTTP API and dashboard.
    http_host: Host = "127.0.0.1"
    #: TCP port of the HTTP API and dashboard; 0 = any free port (logged at start-up).
    http_port: Port = 8000
    #: More ``Host`` names the HTTP API answers, comma-separated (a proxy's or a LAN name);
    #: the bind address and localhost always work, any other name gets 400 (DNS rebinding).
    trusted_hosts: HostList = ""
    #: Deadline of one scheduled run; None = 90 % of COLLECTION_INTERVAL_MINUTES.
    run_timeout_minutes: RunMinutes | None = None
    #: Random delay of up to this many seconds added to every scheduled tick.
    collection_jitter_seconds: JitterSeconds = 0.0
    #: On SIGINT/SIGTERM, how long in-flight jobs may take to finish and be stored.
    shutdown_grace_seconds: GraceSeconds = 20.0
    #: Bearer token for ``POST /api/runs``; unset = that endpoint does not exist.
    coinharvest_api_token: Token | None = None
    #: Replicas on PostgreSQL: seconds between a replica's leadership checks and heartbeats
    #: (a dead leader is replaced within about this long; `service.leadership`).
    leader_check_seconds: CheckSeconds = 1.0
    #: Share each source's limits with every process on the same PostgreSQL (replicas, or
    #: deployments using one API key); off: each process keeps its own limits.
    shared_limits: Switch = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init arguments, then the environment (or `load_settings`' mapping), then ``.env``."""
        environ = _ENVIRON.get()
        if environ is not None:
            env_settings = _MappingEnvSource(settings_cls, environ)
        return init_settings, env_settings, dotenv_settings

    def source(self, name: str) -> SourceOverrides:
        """The user's overrides for source `name`; all None for a name without settings."""
        prefix = SOURCE_ENV_PREFIX.get(name)
        if prefix is None:
            return _plugin_overrides(name, self._plugin_environ)
        p = prefix.lower()
        key: SecretStr | None = getattr(self, f"{p}_api_key")
        return SourceOverrides(
            api_key=key.get_secret_value() if key is not None else None,
            base_url=getattr(self, f"{p}_base_url"),
            max_concurrency=getattr(self, f"max_{p}_concurrency"),
            min_interval_ms=getattr(self, f"{p}_min_interval_ms"),
            rate_limit_per_minute=getattr(self, f"{p}_rate_limit_per_minute"),
            batch_size=getattr(self, f"{p}_batch_size"),
            quota_per_day=getattr(self, f"{p}_quota_per_day"),
            quota_per_month=getattr(self, f"{p}_quota_per_month"),
        )


def load_settings(
    env: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Read and validate the settings.

    :param env: the environment; None means ``os.environ``. Tests pass a dict.
    :param env_file: a ``.env`` file read under the environment (the environment wins); a
        missing file is ignored; None reads no file.
    :raises ConfigError: a value is invalid; the message is one line (see module docstring).
    """
    environ = env if env is not None else os.environ
    token = _ENVIRON.set(environ)
    try:
        settings = Settings(_env_file=env_file)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, Settings.model_fields)) from None
    finally:
        _ENVIRON.reset(token)
    settings._plugin_environ = _source_variables(environ, env_file)
    return settings


def plugin_env_prefix(name: str) -> str:
    """The variable prefix of a plug-in source: its name upper-cased, other characters ``_``."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


#: SourceOverrides field -> (variable name pattern, value type) for plug-in sources.
_PLUGIN_VARIABLES: dict[str, tuple[str, Any]] = {
    "api_key": ("{}_API_KEY", str),
    "base_url": ("{}_BASE_URL", Url),
    "max_concurrency": ("MAX_{}_CONCURRENCY", SourceConcurrency),
    "min_interval_ms": ("{}_MIN_INTERVAL_MS", MinIntervalMs),
    "rate_limit_per_minute": ("{}_RATE_LIMIT_PER_MINUTE", RatePerMinute),
    "batch_size": ("{}_BATCH_SIZE", BatchSize),
    "quota_per_day": ("{}_QUOTA_PER_DAY", QuotaCount),
    "quota_per_month": ("{}_QUOTA_PER_MONTH", QuotaCount),
}
_SOURCE_VARIABLE = re.compile(
    r"^(MAX_.+_CONCURRENCY|.+_(API_KEY|BASE_URL|MIN_INTERVAL_MS|RATE_LIMIT_PER_MINUTE|BATCH_SIZE"
    r"|QUOTA_PER_DAY|QUOTA_PER_MONTH))$"
)


def _source_variables(environ: Mapping[str, str], env_file: Path | None) -> dict[str, str]:
    """Per-source variables of ``.env`` and the environment (which wins), names upper-cased."""
    found: dict[str, str] = {}
    layers: list[Mapping[str, str | None]] = []
    if env_file is not None and Path(env_file).is_file():
        layers.append(dotenv_values(env_file))
    layers.append(environ)
    for layer in layers:
        for key, value in layer.items():
            name = key.upper()
            if value and _SOURCE_VARIABLE.match(name):
                found[name] = value
    return found


def _plugin_overrides(name: str, environ: Mapping[str, str]) -> SourceOverrides:
    """A plug-in source's overrides, validated like the built-ins' (one-line `ConfigError`)."""
    prefix = plugin_env_prefix(name)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field_name, (pattern, kind) in _PLUGIN_VARIABLES.items():
        variable = pattern.format(prefix)
        raw = environ.get(variable)
        if raw is None:
            continue
        try:
            values[field_name] = TypeAdapter(kind).validate_python(raw)
        except ValidationError:
            problems.append(f"{variable}={raw!r} is invalid: must be {allowed_text_of(kind)}")
    if problems:
        raise ConfigError("; ".join(problems))
    return SourceOverrides(**values)


def deprecation_warnings(settings: Settings) -> list[str]:
    """One message per deprecated setting in use, for the CLI to log once at start-up."""
    delay = settings.delay_between_coins_ms
    if delay is None:
        return []
    return [
        f"DELAY_BETWEEN_COINS_MS={delay:g} is deprecated: it is honoured as a pause of "
        f"{delay:g} ms after each job before its global slot takes the next job; set the "
        "per-source <SRC>_MIN_INTERVAL_MS (e.g. COINGECKO_MIN_INTERVAL_MS) instead"
    ]
