"""W4, a 429 storm: the emulator refuses every request to one source for a while.

Source: 3xpl per chain (batch size 1), 1 in flight, one start per 1 s (scaled), latency
0.5 s (scaled), 40 coins. The storm starts 1 s after the run starts and lasts 2 s (not
scaled: Retry-After is whole seconds); each refusal carries ``Retry-After`` = the seconds
left in the storm (rounded up). Requests the source receives while a Retry-After it sent is
still running are counted by the emulator as ``early_retry`` violations ("Cooldown reqs");
for coinharvest they are also counted from its job records. The seed retries after a fixed
5 s (scaled) and ignores Retry-After.
"""

from __future__ import annotations

from bench.bound import SourceLoad, storm_bound
from bench.cases import Setup, configure, run_coinharvest, run_seed, warm_up
from bench.context import Context, Outcome
from bench.harness import scaled, synth_coins
from bench.workloads.common import coinharvest_row, seed_row
from coinharvest.emulator import EmulatorConfig, run_emulator
from coinharvest.models import SourceLimits

__all__ = ["DEFAULT_SCALE", "TITLE", "run"]

TITLE = "W4 429 storm with Retry-After (3xpl, 2 s storm)"
DEFAULT_SCALE = 0.2
SOURCE = "3xpl"
LIMITS = SourceLimits(max_concurrency=1, min_interval_s=1.0, rate_per_window=60, window_s=60.0)
LATENCY_S = 0.5
STORM_START_S = 1.0
STORM_S = 2.0


async def run(ctx: Context) -> Outcome:
    """coinharvest, then the baseline, each with a fresh storm."""
    scale = DEFAULT_SCALE * ctx.scale
    n = 12 if ctx.smoke else 40
    limits = scaled(LIMITS, scale)
    setup = Setup({SOURCE: limits}, {SOURCE: LATENCY_S * scale}, batch_sizes={SOURCE: 1})
    load = SourceLoad(SOURCE, n, limits, LATENCY_S * scale)
    bound = storm_bound(load, STORM_START_S, STORM_S)
    coins = synth_coins(n, [SOURCE])
    storm = {"storm": {"start_s": STORM_START_S, "duration_s": STORM_S}}
    out = Outcome(meta={"scale": scale, "coins": n, "storm": storm})
    async with run_emulator(EmulatorConfig(universe=n)) as emu:
        await configure(emu, setup)
        await warm_up(emu)
        await configure(emu, setup, **{SOURCE: storm})  # the storm clock starts at reset
        summary, fig = await run_coinharvest(emu, setup, coins)
        out.rows.append(coinharvest_row("W4", f"{n} coins", summary, fig, bound))
        base, fig = await run_seed(
            emu, setup, coins, retry_delay_s=5.0 * scale, time_cap_s=ctx.baseline_cap_s * 3
        )
        out.rows.append(
            seed_row("W4", f"{n} coins", base, fig, bound, n, coins_failed=base.coins_failed)
        )
    out.notes.append(
        f"time scale {scale:g}; storm {STORM_START_S:g}–{STORM_START_S + STORM_S:g} s after "
        "the run starts; bound = starts before the storm, then the rest after it."
    )
    return out
