"""W2, CoinGecko only: 11, 1,000 and 10,000 coins under CoinGecko's limits, scaled.

Limits: 3 in flight, 2 s between starts, 30 per 60 s, latency 0.5 s — all times multiplied
by the scale. coinharvest batches 250 ids per request (1, 4 and 40 requests); the seed
sends one request per coin, so its large cases are capped at ``--baseline-cap`` seconds and
projected from their steady rate (the limiter fixes that rate, so the projection is linear).
"""

from __future__ import annotations

import math

from bench.bound import SourceLoad, run_bound
from bench.cases import Setup, configure, run_coinharvest, run_seed, warm_up
from bench.context import Context, Outcome
from bench.harness import scaled, synth_coins
from bench.workloads.common import coinharvest_row, seed_row
from coinharvest.emulator import EmulatorConfig, run_emulator
from coinharvest.models import SourceLimits
from coinharvest.sources.coingecko import MAX_IDS

__all__ = ["DEFAULT_SCALE", "TITLE", "run"]

TITLE = "W2 CoinGecko only (3 in flight / 2 s / 30 per min)"
DEFAULT_SCALE = 0.2
SIZES = (11, 1_000, 10_000)
LIMITS = SourceLimits(max_concurrency=3, min_interval_s=2.0, rate_per_window=30, window_s=60.0)
LATENCY_S = 0.5


async def run(ctx: Context) -> Outcome:
    """Each size: coinharvest, then the baseline (capped)."""
    scale = DEFAULT_SCALE * ctx.scale
    limits = scaled(LIMITS, scale)
    setup = Setup({"coingecko": limits}, {"coingecko": LATENCY_S * scale})
    sizes = SIZES[:1] if ctx.smoke else SIZES
    out = Outcome(meta={"scale": scale, "limits": str(limits), "latency_s": LATENCY_S * scale})
    async with run_emulator(EmulatorConfig(universe=max(sizes))) as emu:
        await configure(emu, setup)
        await warm_up(emu)
        for n in sizes:
            coins = synth_coins(n, ["coingecko"])
            load = SourceLoad("coingecko", math.ceil(n / MAX_IDS), limits, LATENCY_S * scale)
            bound = run_bound([load], setup.max_concurrency)
            summary, emu_fig = await run_coinharvest(emu, setup, coins)
            out.rows.append(coinharvest_row("W2", f"{n:,} coins", summary, emu_fig, bound))
            base, emu_fig = await run_seed(
                emu, setup, coins, retry_delay_s=5.0 * scale, time_cap_s=ctx.baseline_cap_s
            )
            unbatched = run_bound([SourceLoad("coingecko", n, limits, LATENCY_S * scale)], 5)
            out.rows.append(
                seed_row(
                    "W2", f"{n:,} coins", base, emu_fig, bound, n, own_bound_s=round(unbatched, 3)
                )
            )
    out.notes.append(
        f"time scale {scale:g}: spacing {limits.min_interval_s:g} s, window "
        f"{limits.window_s:g} s, latency {LATENCY_S * scale:g} s; bound from batched requests "
        "(250 ids each); seed rows marked (proj.) were stopped after the cap and projected."
    )
    return out
