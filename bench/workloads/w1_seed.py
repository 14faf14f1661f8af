"""W1, the seed's verification: 11 coins with the seed's latencies on a simulated source.

Cases: sequential with a 5 s delay between coins (``MAX_COLLECTION_CONCURRENCY=1`` +
``DELAY_BETWEEN_COINS_MS=5000``), max 3, max 5. coinharvest runs through
`coinharvest.verify.verify` (the product's own ``verify``); the baseline is the seed's pool
over the same `SimulatedSource`. No limits apply, so the bound is the global cap's.
"""

from __future__ import annotations

from bench.baselines.seed import SeedCollector
from bench.bound import pool_bound
from bench.context import Context, Outcome
from bench.report import Row
from coinharvest.models import SourceLimits
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.verify import SOURCE, seed_cases, verify, verify_coins

__all__ = ["DEFAULT_SCALE", "TITLE", "run"]

TITLE = "W1 seed verification (11 coins, simulated latencies)"
DEFAULT_SCALE = 0.05


async def run(ctx: Context) -> Outcome:
    """Run the three cases for coinharvest and for the baseline."""
    scale = DEFAULT_SCALE * ctx.scale
    coins = verify_coins()
    latencies = {c.symbol: lat * scale for c, lat in coins}
    out = Outcome(meta={"scale": scale})
    cases = seed_cases()[:1] if ctx.smoke else seed_cases()
    ours = await verify(time_scale=scale, cases=cases)
    for row in ours:
        case = row.case
        bound = pool_bound(list(latencies.values()), case.max_concurrency, case.delay_s * scale)
        s = row.summary
        out.rows.append(
            Row(
                "W1",
                case.label,
                "coinharvest",
                s.duration_s,
                bound,
                s.requests,
                0,
                0,
                extra={"faster_pct": round(row.faster_pct, 1), "coins_ok": s.coins_ok},
            )
        )
        source = SimulatedSource(SOURCE, latencies=latencies)
        seed = SeedCollector(
            {SOURCE: source},
            {SOURCE: SourceLimits(max_concurrency=1_000_000)},
            max_concurrency=case.max_concurrency,
            retry_delay_s=5.0 * scale,
            delay_s=case.delay_s * scale,
        )
        base = await seed.run([c for c, _ in coins])
        out.rows.append(
            Row(
                "W1",
                case.label,
                "seed",
                base.duration_s,
                bound,
                len(base.requests),
                0,
                0,
                extra={"coins_ok": base.coins_ok},
            )
        )
    out.notes.append(
        f"time scale {scale:g} (latencies and the 5 s delay multiplied by it); simulated "
        "source, no HTTP; bound = sum of latencies + delays (max 1), else "
        "max(longest, total / cap, the ceil(n / cap) shortest in turn)."
    )
    return out
