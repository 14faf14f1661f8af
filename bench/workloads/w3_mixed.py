"""W3, mixed: 200 coins, half on a slow unbatched source, half on a fast one.

Slow: 3xpl per chain (batch size 1), 1 in flight, one start per 1 s, 60 per minute.
Fast: Blockchair per chain (batch size 1), 4 in flight, no spacing. Latency 0.5 s on both.
All times multiplied by the scale; coins alternate slow/fast in the list. The question is
whether the slow source holds the global slots: each source's completion time is compared
with its *own* bound. The seed awaits the slow limiter inside a coin's slot, so its pool
fills with slow coins and the fast coins finish only as the slow ones do.
"""

from __future__ import annotations

from bench.bound import SourceLoad, run_bound, source_bound
from bench.cases import Setup, configure, run_coinharvest, run_seed, warm_up
from bench.context import Context, Outcome
from bench.harness import scaled, synth_coins
from bench.workloads.common import coinharvest_row, seed_row
from coinharvest.emulator import EmulatorConfig, run_emulator
from coinharvest.models import Coin, SourceLimits

__all__ = ["DEFAULT_SCALE", "TITLE", "run"]

TITLE = "W3 mixed: 100 coins on a slow source, 100 on a fast one"
DEFAULT_SCALE = 0.2
SLOW, FAST = "3xpl", "blockchair"
LIMITS = {
    SLOW: SourceLimits(max_concurrency=1, min_interval_s=1.0, rate_per_window=60, window_s=60.0),
    FAST: SourceLimits(max_concurrency=4),
}
LATENCY_S = 0.5


def _coins(n: int) -> list[Coin]:
    slow = synth_coins(n // 2, [SLOW], start=1)
    fast = synth_coins(n - n // 2, [FAST], start=n // 2 + 1)
    mixed = [c for pair in zip(slow, fast, strict=False) for c in pair]
    return mixed + slow[len(fast) :] + fast[len(slow) :]


async def run(ctx: Context) -> Outcome:
    """coinharvest, then the baseline, each judged per source against its own bound."""
    scale = DEFAULT_SCALE * ctx.scale
    n = 20 if ctx.smoke else 200
    limits = {name: scaled(lim, scale) for name, lim in LIMITS.items()}
    latency = {name: LATENCY_S * scale for name in LIMITS}
    setup = Setup(limits, latency, batch_sizes={SLOW: 1, FAST: 1})
    loads = [SourceLoad(name, n // 2, limits[name], latency[name]) for name in LIMITS]
    own = {load.name: source_bound(load) for load in loads}
    bound = run_bound(loads, setup.max_concurrency)
    coins = _coins(n)
    out = Outcome(meta={"scale": scale, "coins": n, "own_bounds_s": own})
    async with run_emulator(EmulatorConfig(universe=n)) as emu:
        await configure(emu, setup)
        await warm_up(emu)
        summary, fig = await run_coinharvest(emu, setup, coins)
        ours = coinharvest_row("W3", f"{n} coins", summary, fig, bound)
        base, fig = await run_seed(
            emu, setup, coins, retry_delay_s=5.0 * scale, time_cap_s=ctx.baseline_cap_s * 6
        )
        theirs = seed_row("W3", f"{n} coins", base, fig, bound, n)
    for row in (ours, theirs):
        done = row.extra["source_done_s"]
        row.extra["per_source"] = {
            name: {
                "done_s": done.get(name),
                "own_bound_s": round(own[name], 4),
                "ratio": None if done.get(name) is None else round(done[name] / own[name], 3),
            }
            for name in LIMITS
        }
        out.rows.append(row)
        per = row.extra["per_source"]
        out.notes.append(
            f"{row.impl}: slow ({SLOW}) done at {per[SLOW]['done_s']} s = "
            f"{per[SLOW]['ratio']} × its bound {own[SLOW]:.3f} s; fast ({FAST}) done at "
            f"{per[FAST]['done_s']} s = {per[FAST]['ratio']} × its bound {own[FAST]:.3f} s"
        )
    out.notes.append(f"time scale {scale:g}; global cap 5; coins alternate slow/fast.")
    return out
