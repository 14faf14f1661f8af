"""Shared plumbing of the workloads: scaled limits, coins, engines, emulator figures.

Limits are given in real-world units and multiplied by the bench scale (spacing, window,
latency, retry delays); counts (in-flight caps, starts per window, coins) are not scaled.
The emulator enforces the scaled limits exactly. Both coinharvest and the baseline run
with those limits plus the 5 ms spacing guard that `coinharvest.sources.registry` adds to
every configured spacing (the guard is the same for both, and counted against both).

The engine is built as `coinharvest.engine.build.build_engine` builds it, except for the limits:
``<SRC>_RATE_LIMIT_PER_MINUTE`` fixes the window at 60 s, so a scaled window cannot be
expressed in settings; the `SourceLimits` are passed to `Engine` directly.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from coinharvest.config import load_settings
from coinharvest.engine import Engine
from coinharvest.engine.hooks import ResultSink
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import Coin, JobRecord, JobStatus, RunSummary, SourceLimits
from coinharvest.sources.base import Source
from coinharvest.sources.registry import SPACING_GUARD_S, build_sources

__all__ = [
    "cooldown_starts",
    "emulator_limits",
    "guarded",
    "http_sources",
    "make_engine",
    "scaled",
    "source_done",
    "synth_coins",
    "upstream_figures",
]

_RETRY_AFTER = re.compile(r"retry after ([0-9.]+) s")


def scaled(limits: SourceLimits, scale: float) -> SourceLimits:
    """`limits` with spacing and window multiplied by `scale` (counts unchanged)."""
    return replace(
        limits, min_interval_s=limits.min_interval_s * scale, window_s=limits.window_s * scale
    )


def guarded(limits: SourceLimits, guard_s: float = SPACING_GUARD_S) -> SourceLimits:
    """The limits the engine runs with: the registry's spacing guard added (see registry)."""
    spacing = limits.min_interval_s + guard_s if limits.min_interval_s > 0 else 0.0
    window = limits.window_s + guard_s if limits.rate_per_window is not None else limits.window_s
    return replace(limits, min_interval_s=spacing, window_s=window)


def emulator_limits(limits: SourceLimits) -> dict[str, Any]:
    """The emulator's `LimitConfig` document enforcing exactly `limits` (Retry-After always)."""
    return {
        "max_in_flight": limits.max_concurrency,
        "min_interval_ms": limits.min_interval_s * 1000.0 or None,
        "rate": limits.rate_per_window,
        "window_s": limits.window_s,
        "retry_after": "always",
    }


def synth_coins(n: int, sources: Sequence[str], *, start: int = 1) -> list[Coin]:
    """`n` emulator-universe coins (``synth-00001`` …) on every source in `sources`.

    The CoinGecko id and the 3xpl / Blockchair chain are the synthetic id; Nano and
    NearBlocks get their only id (``nano``, ``near``).
    """
    fixed = {"nano": "nano", "nearblocks": "near"}
    coins = []
    for i in range(start, start + n):
        sid = f"synth-{i:05d}"
        ids = {src: fixed.get(src, sid) for src in sources}
        coins.append(Coin(f"SYN{i}", f"Synth {i:05d}", ids, tuple((s,) for s in sources)))
    return coins


def http_sources(names: Iterable[str], base_urls: Mapping[str, str]) -> dict[str, Source]:
    """The real source classes (httpx) pointed at the emulator, with default settings
    (plus a Blockchair key: the emulator, like Blockchair, refuses keyless requests)."""
    settings = load_settings(env={"BLOCKCHAIR_API_KEY": "bench"}, env_file=None)
    return build_sources(settings, names=list(names), base_urls=base_urls)


def make_engine(
    sources: Mapping[str, Source],
    limits: Mapping[str, SourceLimits],
    *,
    batch_sizes: Mapping[str, int] | None = None,
    max_concurrency: int = 5,
    pause_after_job_s: float = 0.0,
    sink: ResultSink | None = None,
) -> Engine:
    """An engine as `build_engine` makes one, with the guarded `limits` (see module doc)."""
    return Engine(
        sources,
        max_concurrency=max_concurrency,
        limits={name: guarded(lim) for name, lim in limits.items()},
        batch_sizes=batch_sizes,
        pause_after_job_s=pause_after_job_s,
        retry=RetryPolicy(rng=random.Random(7)),
        job_timeout_s=65.0,
        sink=sink,
    )


def upstream_figures(stats: Mapping[str, Any], upstream: str) -> dict[str, int]:
    """Requests, rejections, violations and early retries the emulator saw for `upstream`."""
    requests = sum(
        n for keys in stats["requests"].get(upstream, {}).values() for n in keys.values()
    )
    rejected = sum(stats["rate_limited"]["by_upstream"].get(upstream, {}).values())
    kinds = stats["violations"]["by_upstream"].get(upstream, {})
    return {
        "requests": requests,
        "rejected": rejected,
        "violations": sum(kinds.values()),
        "early_retry": kinds.get("early_retry", 0),
    }


def source_done(jobs: Sequence[JobRecord]) -> dict[str, float]:
    """Per source, when its last job ended (run-relative seconds)."""
    done: dict[str, float] = {}
    for job in jobs:
        if job.ended_s is not None and job.status is not JobStatus.DEFERRED:
            done[job.source] = max(done.get(job.source, 0.0), job.ended_s)
    return done


def cooldown_starts(summary: RunSummary, grace_s: float = 0.0) -> int:
    """Job starts at a source while a Retry-After it had received was still running.

    The cooldown of a 429 runs from the job's end to end + Retry-After (parsed from the
    record's error text). Jobs already in flight when the 429 arrived are not counted.
    """
    windows: dict[str, list[tuple[float, float]]] = {}
    for job in summary.jobs:
        if job.status is JobStatus.RATE_LIMITED and job.ended_s is not None:
            match = _RETRY_AFTER.search(job.error or "")
            if match:
                end = job.ended_s + float(match.group(1))
                windows.setdefault(job.source, []).append((job.ended_s + grace_s, end))
    return sum(
        1
        for job in summary.jobs
        if job.started_s is not None
        for lo, hi in windows.get(job.source, ())
        if lo < job.started_s < hi
    )
