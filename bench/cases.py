"""Running one case against the in-process emulator: coinharvest, or the seed's baseline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.baselines.seed import BaselineSummary, SeedCollector
from bench.harness import (
    emulator_limits,
    guarded,
    http_sources,
    make_engine,
    synth_coins,
    upstream_figures,
)
from coinharvest.emulator import UPSTREAMS, RunningEmulator, UpstreamName
from coinharvest.models import Coin, RunSummary, SourceLimits

__all__ = ["Setup", "configure", "run_coinharvest", "run_seed", "warm_up"]


@dataclass(frozen=True, slots=True)
class Setup:
    """One workload's sources: scaled limits and latency per source, batch sizes, cap."""

    limits: Mapping[str, SourceLimits]
    latency_s: Mapping[str, float]
    batch_sizes: Mapping[str, int] = field(default_factory=dict)
    max_concurrency: int = 5

    @property
    def names(self) -> list[str]:
        """The sources used."""
        return list(self.limits)


def upstream(name: str) -> UpstreamName:
    """`name` as the emulator's name of an upstream (a source name is one)."""
    for known in UPSTREAMS:
        if known == name:
            return known
    raise ValueError(f"unknown upstream {name!r}; expected one of {UPSTREAMS}")


async def configure(emu: RunningEmulator, setup: Setup, **faults: Any) -> None:
    """Make the emulator enforce `setup`'s limits and latency (and `faults`, by upstream)."""
    for name in setup.names:
        sections: dict[str, Any] = {
            "limits": emulator_limits(setup.limits[name]),
            "latency": {"fixed_ms": setup.latency_s[name] * 1000.0, "jitter_ms": 0.0},
        }
        if name in faults:
            sections["faults"] = faults[name]
        await emu.set_upstream(upstream(name), **sections)


async def warm_up(emu: RunningEmulator) -> None:
    """One throwaway request, so one-time lazy initialisation of the HTTP stack in this
    process (about 30 ms on the first request) is not charged to whichever case runs first."""
    sources = http_sources(["coingecko"], emu.base_urls)
    try:
        await sources["coingecko"].fetch(synth_coins(1, ["coingecko"]))
    finally:
        await sources["coingecko"].aclose()


def _emu_totals(stats: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    per = {name: upstream_figures(stats, name) for name in names}
    return {
        "violations": sum(f["violations"] for f in per.values()),
        "early_retry": sum(f["early_retry"] for f in per.values()),
        "by_source": per,
        "violation_kinds": stats["violations"]["by_kind"],
    }


async def run_coinharvest(
    emu: RunningEmulator, setup: Setup, coins: Sequence[Coin]
) -> tuple[RunSummary, dict[str, Any]]:
    """One engine run over real HTTP sources; returns the summary and emulator figures."""
    await emu.reset()
    sources = http_sources(setup.names, emu.base_urls)
    try:
        engine = make_engine(
            sources,
            setup.limits,
            batch_sizes=setup.batch_sizes,
            max_concurrency=setup.max_concurrency,
        )
        summary = await engine.run(coins, trigger="bench")
    finally:
        for source in sources.values():
            await source.aclose()
    return summary, _emu_totals(await emu.stats(), setup.names)


async def run_seed(
    emu: RunningEmulator,
    setup: Setup,
    coins: Sequence[Coin],
    *,
    retry_delay_s: float,
    time_cap_s: float | None,
) -> tuple[BaselineSummary, dict[str, Any]]:
    """One baseline run over the same HTTP sources and the same (guarded) limits."""
    await emu.reset()
    sources = http_sources(setup.names, emu.base_urls)
    try:
        seed = SeedCollector(
            sources,
            {name: guarded(lim) for name, lim in setup.limits.items()},
            max_concurrency=setup.max_concurrency,
            retry_delay_s=retry_delay_s,
        )
        summary = await seed.run(coins, time_cap_s=time_cap_s)
    finally:
        for source in sources.values():
            await source.aclose()
    return summary, _emu_totals(await emu.stats(), setup.names)
