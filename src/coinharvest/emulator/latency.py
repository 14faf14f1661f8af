"""Latency injection: a fixed delay plus jitter drawn from a configured distribution."""

from __future__ import annotations

import random

from coinharvest.emulator.config import LatencyConfig

__all__ = ["sample_delay"]


def sample_delay(latency: LatencyConfig, rng: random.Random) -> float:
    """Seconds to wait before answering: ``fixed_ms`` plus a non-negative jitter.

    ``uniform`` draws from [0, jitter_ms]; ``exponential`` has mean ``jitter_ms``;
    ``normal`` is the absolute value of a normal with standard deviation ``jitter_ms``.
    """
    jitter = latency.jitter_ms
    if jitter <= 0:
        return latency.fixed_ms / 1000.0
    if latency.distribution == "uniform":
        extra = rng.uniform(0.0, jitter)
    elif latency.distribution == "exponential":
        extra = rng.expovariate(1.0 / jitter)
    else:
        extra = abs(rng.gauss(0.0, jitter))
    return (latency.fixed_ms + extra) / 1000.0
