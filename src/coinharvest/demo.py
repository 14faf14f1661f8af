"""`coinharvest demo`: a real collection against the emulator, with no internet and no setup.

The emulator starts in-process on a free loopback port with the upstreams' real limits (so a
client that broke one would be answered 429 and counted), every source is pointed at it, and
one collection of the coins runs through the real engine and HTTP clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from coinharvest.collect import SinkDecorator, collect_once
from coinharvest.config import Settings
from coinharvest.emulator import EmulatorConfig, run_emulator
from coinharvest.emulator.config import LatencyConfig, UpstreamName
from coinharvest.emulator.profiles import strict
from coinharvest.engine.hooks import ResultSink
from coinharvest.models import Coin, RunSummary

__all__ = ["DEMO_KEY", "DemoResult", "demo_config", "run_demo"]

#: The key the demo gives the emulator's Blockchair (which refuses keyless requests).
DEMO_KEY = "demo"

#: A realistic latency per upstream (fixed ms, jitter ms); the limits are `--strict`'s.
_LATENCY_MS: dict[UpstreamName, tuple[float, float]] = {
    "coingecko": (120, 60),
    "3xpl": (90, 40),
    "blockchair": (150, 50),
    "nearblocks": (110, 40),
    "nano": (60, 30),
}


def demo_config() -> EmulatorConfig:
    """The emulator as the demo runs it: real limits (`--strict`), realistic latency, no faults."""
    config = strict(EmulatorConfig())
    upstreams = {
        name: config.upstream(name).model_copy(
            update={"latency": LatencyConfig(fixed_ms=fixed, jitter_ms=jitter)}
        )
        for name, (fixed, jitter) in _LATENCY_MS.items()
    }
    return config.model_copy(update={"upstreams": upstreams})


@dataclass(frozen=True, slots=True)
class DemoResult:
    """The run's summary and what the emulator saw."""

    summary: RunSummary
    stats: dict[str, Any]

    def requests_to(self, upstream: str) -> int:
        """Requests the emulator received for `upstream` (all endpoints and keys)."""
        endpoints = self.stats.get("requests", {}).get(upstream, {})
        return sum(int(n) for per_key in endpoints.values() for n in per_key.values())

    @property
    def violations(self) -> int:
        """Limit violations the emulator counted, over all upstreams."""
        return int(self.stats.get("violations", {}).get("total", 0))

    @property
    def rate_limited(self) -> int:
        """429s (or 402/430) the emulator sent."""
        return int(self.stats.get("rate_limited", {}).get("total", 0))


async def run_demo(
    settings: Settings,
    coins: Sequence[Coin],
    *,
    sink: ResultSink | None = None,
    decorate: SinkDecorator | None = None,
) -> DemoResult:
    """Start the emulator, collect `coins` once through it, and return summary + stats.

    Blockchair, like the real one, answers keyless requests with 430; the demo gives it a
    stand-in key (``demo``, which only the emulator accepts) unless one is configured, so
    the fallback chains behave as they do for a user with a key.
    """
    if settings.blockchair_api_key is None:
        settings = settings.model_copy(update={"blockchair_api_key": SecretStr(DEMO_KEY)})
    async with run_emulator(demo_config()) as emu:
        summary = await collect_once(
            settings,
            coins,
            sink=sink,
            base_urls=emu.base_urls,
            decorate=decorate,
            trigger="demo",
        )
        return DemoResult(summary, await emu.stats())
