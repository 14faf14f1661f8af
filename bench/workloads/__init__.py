"""The workloads, by name (one module each)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.context import Context, Outcome
from bench.workloads import w1_seed, w2_coingecko, w3_mixed, w4_storm, w5_scale

__all__ = ["WORKLOADS", "Workload"]

Workload = Callable[[Context], Awaitable[Outcome]]

#: name -> (title, runner)
WORKLOADS: dict[str, tuple[str, Workload]] = {
    "w1": (w1_seed.TITLE, w1_seed.run),
    "w2": (w2_coingecko.TITLE, w2_coingecko.run),
    "w3": (w3_mixed.TITLE, w3_mixed.run),
    "w4": (w4_storm.TITLE, w4_storm.run),
    "w5": (w5_scale.TITLE, w5_scale.run),
}
