"""Ready-made limit profiles.

:data:`STRICT_LIMITS` is what ``--strict`` applies: each upstream's published free-tier
limits, tightened to the collector's default spacing where the project has one (CoinGecko
3 in flight / 2000 ms / 30 per minute, as DESIGN §3). A collector running with its default
settings must never be rejected under this profile; one that is too eager is.

Sources (reference/upstream-apis.md): CoinGecko demo 30/min and 10,000/month; Blockchair
30/min and 1,440/day (its documented free figures, applied per key: keyless requests have
been refused outright since July 2025, which ``auth`` enforces in every profile);
NearBlocks free 6/min, 333/day, 10,000/month; rpc.nano.to 60/min. 3xpl publishes no
numbers: 60/min with 1 s spacing is a guess.
"""

from __future__ import annotations

from coinharvest.emulator.config import EmulatorConfig, LimitConfig, UpstreamName

__all__ = ["STRICT_LIMITS", "strict"]

STRICT_LIMITS: dict[UpstreamName, LimitConfig] = {
    "coingecko": LimitConfig(
        max_in_flight=3, min_interval_ms=2000, rate=30, monthly_cap=10_000, retry_after=0.5
    ),
    "3xpl": LimitConfig(max_in_flight=3, min_interval_ms=1000, rate=60, retry_after="always"),
    "blockchair": LimitConfig(
        max_in_flight=2, min_interval_ms=2000, rate=30, daily_cap=1440, retry_after="never"
    ),
    "nearblocks": LimitConfig(rate=6, daily_cap=333, monthly_cap=10_000, retry_after="never"),
    "nano": LimitConfig(min_interval_ms=1000, rate=60, retry_after="never"),
}


def strict(config: EmulatorConfig) -> EmulatorConfig:
    """``config`` with every upstream's limits replaced by :data:`STRICT_LIMITS`."""
    upstreams = {
        name: upstream.model_copy(update={"limits": STRICT_LIMITS[name]})
        for name, upstream in config.upstreams.items()
    }
    return config.model_copy(update={"upstreams": upstreams})
