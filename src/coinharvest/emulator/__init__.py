"""An emulator of the upstream APIs (CoinGecko, 3xpl, Blockchair, NearBlocks, Nano RPC).

One HTTP server on loopback with a path prefix per upstream, real JSON shapes and error
bodies, enforced limits, latency and fault injection, and counters of every request and
limit violation. See DESIGN §9.
"""

from __future__ import annotations

from coinharvest.emulator.app import EmulatorApp
from coinharvest.emulator.config import (
    UPSTREAMS,
    AuthConfig,
    CapacityConfig,
    CapacityStep,
    EmulatorConfig,
    FaultConfig,
    LatencyConfig,
    LimitConfig,
    ShapeConfig,
    StormConfig,
    UpstreamConfig,
    UpstreamName,
    load_config,
    merge_config,
)
from coinharvest.emulator.profiles import STRICT_LIMITS, strict
from coinharvest.emulator.runner import RunningEmulator, base_urls_for, run_emulator, serve

__all__ = [
    "STRICT_LIMITS",
    "UPSTREAMS",
    "AuthConfig",
    "CapacityConfig",
    "CapacityStep",
    "EmulatorApp",
    "EmulatorConfig",
    "FaultConfig",
    "LatencyConfig",
    "LimitConfig",
    "RunningEmulator",
    "ShapeConfig",
    "StormConfig",
    "UpstreamConfig",
    "UpstreamName",
    "base_urls_for",
    "load_config",
    "merge_config",
    "run_emulator",
    "serve",
    "strict",
]
