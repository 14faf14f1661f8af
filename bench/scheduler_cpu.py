"""The engine's own CPU per job ("scheduler CPU"): W5's in-memory run, repeated, median.

The workload is W5's (`bench.workloads.w5_scale`): 10,000 coins, every one on CoinGecko
(batch 250) and on one of three chain sources (batch 1), instant `SimulatedSource`s with no
limits to speak of, global cap 32, the default in-memory sink: 10,040 jobs. With no network,
no store and no waiting, the process time of a run is what the engine itself costs.

One warm-up run (imports, caches), then ``--repeat`` measured runs in this process; prints
each run's µs/job and the median. The garbage collector stays as the process has it (on,
unless ``--no-gc``); the output says which. ``--timeout`` sets ``job_timeout_s`` (the CLI
always sets one; W5's figure runs without). ``--unbatched`` runs every source at batch 1
(40,000 jobs, as W5's second figure).

Usage::

    PYTHONPATH=. python -m bench.scheduler_cpu [--coins 10000] [--repeat 7] [--timeout 25]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time

from bench.workloads.w5_scale import BATCH, GLOBAL_CAP, LIMITS, coins
from coinharvest.engine import Engine
from coinharvest.models import SourceLimits
from coinharvest.sources.simulated import SimulatedSource

__all__ = ["main", "one_run"]


async def one_run(n: int, batch: dict[str, int], job_timeout_s: float | None) -> tuple[int, float]:
    """One W5 scheduler run (as `w5_scale._scheduler_run`, plus `job_timeout_s`):
    ``(jobs, CPU seconds)``."""
    sources = {
        name: SimulatedSource(name, batch_size=batch[name], limits=SourceLimits(1_000_000))
        for name in LIMITS
    }
    engine = Engine(sources, max_concurrency=GLOBAL_CAP, job_timeout_s=job_timeout_s)
    cpu0 = time.process_time()
    summary = await engine.run(coins(n), trigger="bench")
    cpu = time.process_time() - cpu0
    return len(summary.jobs), cpu


def main() -> None:
    """Parse the options, run, print µs/job per run and their median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=None, help="job_timeout_s")
    parser.add_argument("--unbatched", action="store_true", help="batch size 1 everywhere")
    parser.add_argument("--no-gc", action="store_true", help="gc.disable() before the runs")
    args = parser.parse_args()
    batch = dict.fromkeys(LIMITS, 1) if args.unbatched else BATCH
    if args.no_gc:
        gc.disable()
    asyncio.run(one_run(300, batch, args.timeout))  # warm-up: imports, caches
    figures = []
    for _ in range(args.repeat):
        jobs, cpu = asyncio.run(one_run(args.coins, batch, args.timeout))
        figures.append(1e6 * cpu / max(1, jobs))
        print(f"{jobs:,} jobs  {cpu:.3f} s CPU  {figures[-1]:.1f} µs/job", flush=True)
    print(
        f"median {statistics.median(figures):.1f} µs/job over {len(figures)} runs"
        f" (min {min(figures):.1f}); gc {'on' if gc.isenabled() else 'off'};"
        f" job_timeout_s={args.timeout}; batch {'1' if args.unbatched else 'W5'}"
    )


if __name__ == "__main__":
    main()
