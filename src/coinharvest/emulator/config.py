"""Typed configuration of the emulator: limits, latency, faults and auth per upstream.

The same schema is read from a TOML or JSON file (``--config``), accepted by
``POST /__emulator__/config`` (as a *partial* document, deep-merged into the current one) and
passed to :func:`coinharvest.emulator.run_emulator`. Example (TOML)::

    seed = 7
    universe = 500

    [upstreams.coingecko.limits]
    max_in_flight = 3
    min_interval_ms = 2000
    rate = 30              # starts per rolling window
    window_s = 60
    retry_after = 0.5      # "always", "never" or a probability

    [upstreams.coingecko.faults]
    error_503 = 0.05
    storm = { start_s = 10, duration_s = 5, retry_after_s = 3 }

    [upstreams.nano.shape]
    pre_v19 = true         # block_count without "cemented"
    rate_limit_body = "text"

    # An upstream whose real limits differ from the documented ones (capacity_config.py):
    [upstreams.3xpl.capacity]
    concurrent = 8         # hidden server capacity: requests *served* at once; more queue (FIFO)
    steps = [ { at_s = 20, concurrent = 2 }, { at_s = 40, concurrent = 8, ramp_s = 5 } ]
                           # capacity changes, at_s counted from when steps were configured;
                           # ramp_s > 0: linear from the previous value over ramp_s seconds
    hidden_rate = 10       # starts really allowed per hidden_window_s, per key / IP; over it:
    hidden_window_s = 60   # the upstream's 429 (+ Retry-After as limits.retry_after says),
                           # counted as hidden_rejected, not as a violation
    headers = true         # x-ratelimit-limit / -remaining / -reset on every answer, for
                           # hidden_rate if set, else limits.rate (CoinGecko: its date format)

The latency is then the *service time*: with capacity K, latency L and N > K concurrent
clients, answers take about L x N / K. Changing ``capacity.steps`` restarts their clock
(as a changed storm does).

Every field has a default that disables the feature (no limits, no latency, no faults), so
``EmulatorConfig()`` is a permissive, fast emulator, with one exception that is reality:
Blockchair requires an API key (``auth.key_required`` defaults to "the upstream's rule").
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from coinharvest.emulator.capacity_config import CapacityConfig, CapacityStep

__all__ = [
    "FAULT_KINDS",
    "NEARBLOCKS_STATS_FIELDS",
    "UPSTREAMS",
    "AuthConfig",
    "CapacityConfig",
    "CapacityStep",
    "EmulatorConfig",
    "FaultConfig",
    "LatencyConfig",
    "LimitConfig",
    "ShapeConfig",
    "StormConfig",
    "UpstreamConfig",
    "UpstreamName",
    "load_config",
    "merge_config",
]

UpstreamName = Literal["coingecko", "3xpl", "blockchair", "nearblocks", "nano"]
#: Upstream names, in the order they are served and reported.
UPSTREAMS: tuple[UpstreamName, ...] = ("coingecko", "3xpl", "blockchair", "nearblocks", "nano")

MAX_UNIVERSE = 20_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitConfig(_Model):
    """Limits applied to each API key (or client IP when keyless) of one upstream.

    ``None`` switches a limit off. A request that breaks any limit is rejected with the
    upstream's rate-limit answer and counted as a violation; rejected requests do not count
    as starts (they move neither the spacing clock nor the window nor the caps).
    """

    max_in_flight: int | None = Field(default=None, ge=1)
    min_interval_ms: float | None = Field(default=None, ge=0)
    rate: int | None = Field(default=None, ge=1, description="starts allowed per rolling window")
    window_s: float = Field(default=60.0, gt=0)
    daily_cap: int | None = Field(default=None, ge=1, description="starts per UTC day")
    monthly_cap: int | None = Field(default=None, ge=1, description="starts per UTC month")
    retry_after: Literal["always", "never"] | float = Field(
        default="always", description='send Retry-After: "always", "never" or a probability'
    )
    status: int = Field(default=429, description="HTTP status of a rejection (Blockchair: 402/430)")

    @field_validator("retry_after")
    @classmethod
    def _probability(cls, value: str | float) -> str | float:
        if isinstance(value, float) and not 0.0 <= value <= 1.0:
            raise ValueError("retry_after probability must be within [0, 1]")
        return value

    @field_validator("status")
    @classmethod
    def _limit_status(cls, value: int) -> int:
        if value not in (402, 429, 430, 435):
            raise ValueError("status must be one of 402, 429, 430, 435")
        return value

    def retry_after_probability(self) -> float:
        """Probability in [0, 1] that a rejection carries ``Retry-After``."""
        if self.retry_after == "always":
            return 1.0
        if self.retry_after == "never":
            return 0.0
        return float(self.retry_after)


class LatencyConfig(_Model):
    """Delay added to every admitted request: ``fixed_ms`` plus a random jitter.

    It is the request's *service time*: with a ``capacity``, it starts once the request
    has a service slot.
    """

    fixed_ms: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0)
    distribution: Literal["uniform", "exponential", "normal"] = "uniform"


class StormConfig(_Model):
    """A window in which every request is answered with a rate-limit rejection.

    ``start_s`` counts from the moment this storm was configured (server start, reset, or a
    ``POST /__emulator__/config`` that changed it).
    """

    start_s: float = Field(default=0.0, ge=0)
    duration_s: float = Field(gt=0)
    retry_after_s: float | None = Field(
        default=None, ge=0, description="Retry-After value; default: time left in the storm"
    )


#: Fault kinds, in the order their probabilities are stacked for one uniform draw.
FAULT_KINDS = (
    "error_500",
    "error_502",
    "error_503",
    "hang",
    "malformed_json",
    "truncated_json",
    "html_403",
    "reset",
)


class FaultConfig(_Model):
    """Per-request fault probabilities (their sum must not exceed 1) and a 429 storm."""

    error_500: float = Field(default=0.0, ge=0, le=1)
    error_502: float = Field(default=0.0, ge=0, le=1)
    error_503: float = Field(default=0.0, ge=0, le=1)
    hang: float = Field(default=0.0, ge=0, le=1)
    hang_s: float = Field(default=30.0, gt=0, description="how long a hang lasts")
    malformed_json: float = Field(default=0.0, ge=0, le=1)
    truncated_json: float = Field(default=0.0, ge=0, le=1)
    html_403: float = Field(default=0.0, ge=0, le=1)
    reset: float = Field(default=0.0, ge=0, le=1)
    storm: StormConfig | None = None

    @model_validator(mode="after")
    def _sum_at_most_one(self) -> FaultConfig:
        if sum(p for _, p in self.probabilities()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must sum to at most 1")
        return self

    def probabilities(self) -> list[tuple[str, float]]:
        """``(fault kind, probability)`` in a fixed order, zero entries included."""
        kinds = FAULT_KINDS
        return [(kind, float(getattr(self, kind))) for kind in kinds]


class AuthConfig(_Model):
    """Which keys an upstream accepts.

    ``key_required=None`` (the default) follows the real upstream: Blockchair requires a key
    (it has blocked keyless requests since July 2025, Blockchair.Support #1652, answering
    430), the others do not. ``valid_keys=None`` accepts any non-empty key. ``plan``
    (CoinGecko only) is the host being emulated: ``demo`` (api.coingecko.com) or ``pro``
    (pro-api.coingecko.com).
    """

    key_required: bool | None = None
    valid_keys: list[str] | None = None
    plan: Literal["demo", "pro"] = "demo"


#: The fields of NearBlocks' ``/v1/stats`` row that ``shape.null_fields`` may null.
NEARBLOCKS_STATS_FIELDS = (
    "total_supply",
    "circulating_supply",
    "avg_block_time",
    "gas_price",
    "nodes_online",
    "near_price",
    "near_btc_price",
    "market_cap",
    "volume",
    "high_24h",
    "high_all",
    "low_24h",
    "low_all",
    "change_24",
    "total_txns",
    "tps",
)


class ShapeConfig(_Model):
    """Variants of the answers that real deployments of an upstream differ in.

    Each field belongs to one upstream (named first); setting it on another is an error.

    * ``pre_v19`` (nano): a node older than V19: ``block_count`` has no ``cemented``.
    * ``rate_limit_body`` (nano): ``json`` answers 429 like rpc.nano.to
      (``{"error":429,"message":"Too many requests. Please Wait."}``); ``text`` like a
      NanoRPCProxy (``Max allowed requests of N reached. Time left: Ssec`` as a non-JSON
      body, ``X-RateLimit-*`` headers, no ``Retry-After``).
    * ``sparse_chains`` (3xpl): chains answered with only ``best_block``,
      ``best_block_hash`` and ``best_block_time`` (every field is optional at 3xpl), on
      top of the synthetic chains that are always sparse (see ``upstreams/threexpl.py``).
    * ``null_fields`` (nearblocks): ``/v1/stats`` fields sent as ``null`` (NearBlocks'
      columns are nullable; ``near_price`` also nulls the charts' ``near_price``).
    """

    pre_v19: bool = False
    rate_limit_body: Literal["json", "text"] = "json"
    sparse_chains: list[str] = Field(default_factory=list)
    null_fields: list[str] = Field(default_factory=list)

    @field_validator("null_fields")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(NEARBLOCKS_STATS_FIELDS))
        if unknown:
            raise ValueError(f"unknown NearBlocks stats fields: {', '.join(unknown)}")
        return value

    def owner_errors(self, upstream: str) -> list[str]:
        """Fields set to a non-default value that do not belong to ``upstream``."""
        owners = {
            "pre_v19": "nano",
            "rate_limit_body": "nano",
            "sparse_chains": "3xpl",
            "null_fields": "nearblocks",
        }
        default = ShapeConfig()
        return [
            f"upstreams.{upstream}.shape.{name} applies to {owner} only"
            for name, owner in owners.items()
            if owner != upstream and getattr(self, name) != getattr(default, name)
        ]


class UpstreamConfig(_Model):
    """Everything configurable about one upstream; ``key_limits`` overrides per API key."""

    limits: LimitConfig = LimitConfig()
    key_limits: dict[str, LimitConfig] = Field(default_factory=dict)
    latency: LatencyConfig = LatencyConfig()
    faults: FaultConfig = FaultConfig()
    auth: AuthConfig = AuthConfig()
    shape: ShapeConfig = ShapeConfig()
    capacity: CapacityConfig = CapacityConfig()

    def limits_for(self, key: str) -> LimitConfig:
        """The limits that apply to ``key`` (an API key, or ``ip:<addr>`` when keyless)."""
        return self.key_limits.get(key, self.limits)


def _default_upstreams() -> dict[UpstreamName, UpstreamConfig]:
    return {name: UpstreamConfig() for name in UPSTREAMS}


class EmulatorConfig(_Model):
    """Top-level configuration. ``upstreams`` always holds all five upstreams."""

    seed: int = 1234
    universe: int = Field(default=0, ge=0, le=MAX_UNIVERSE, description="synthetic coins")
    cache_s: float = Field(default=60.0, ge=0, description="data refresh period (edge cache)")
    upstreams: dict[UpstreamName, UpstreamConfig] = Field(default_factory=_default_upstreams)

    @field_validator("upstreams")
    @classmethod
    def _all_upstreams(
        cls, value: dict[UpstreamName, UpstreamConfig]
    ) -> dict[UpstreamName, UpstreamConfig]:
        return {name: value.get(name, UpstreamConfig()) for name in UPSTREAMS}

    @model_validator(mode="after")
    def _shapes_on_their_upstream(self) -> EmulatorConfig:
        errors = [e for name, cfg in self.upstreams.items() for e in cfg.shape.owner_errors(name)]
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def upstream(self, name: UpstreamName) -> UpstreamConfig:
        """The configuration of one upstream."""
        return self.upstreams[name]


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merge_config(base: EmulatorConfig, patch: dict[str, Any]) -> EmulatorConfig:
    """Return ``base`` with ``patch`` (a partial config document) deep-merged in.

    Mappings merge key by key; any other value (including ``null`` and lists) replaces.

    :raises pydantic.ValidationError: if the result is not a valid configuration.
    """
    return EmulatorConfig.model_validate(_deep_merge(base.model_dump(), patch))


def load_config(path: Path, base: EmulatorConfig | None = None) -> EmulatorConfig:
    """Read a TOML (``.toml``) or JSON file and merge it into ``base`` (default: defaults).

    :raises ValueError: on an unreadable document; pydantic.ValidationError on bad values.
    """
    text = path.read_text(encoding="utf-8")
    document: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: the configuration must be a table/object")
    return merge_config(base or EmulatorConfig(), document)
