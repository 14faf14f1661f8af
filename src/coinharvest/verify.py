"""The seed's concurrency verification, run through the real engine on simulated sources.

Three runs over the same coins and latencies (the seed's figures: BTC 2.0 s, ETH 1.5 s, …):

1. sequential: ``MAX_COLLECTION_CONCURRENCY=1`` with ``DELAY_BETWEEN_COINS_MS=5000``
   (the old collector: collect, wait 5 s, collect, …; about 70 s for 11 coins);
2. ``MAX_COLLECTION_CONCURRENCY=3``;
3. ``MAX_COLLECTION_CONCURRENCY=5`` (about 5 s: 90–93 % faster).

`time_scale` multiplies every latency and the delay, so 0.05 finishes in a few seconds
with the same ratios.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from coinharvest.engine import Engine
from coinharvest.engine.hooks import ResultSink
from coinharvest.models import Coin, RunSummary
from coinharvest.sources.simulated import SimulatedSource

__all__ = ["SEED_COINS", "VerifyCase", "VerifyRow", "seed_cases", "verify", "verify_coins"]

#: The seed's 11 coins: symbol, name, simulated latency in seconds.
SEED_COINS: tuple[tuple[str, str, float], ...] = (
    ("BTC", "Bitcoin", 2.0),
    ("ETH", "Ethereum", 1.5),
    ("DASH", "Dash", 1.8),
    ("DGB", "DigiByte", 2.2),
    ("XMR", "Monero", 1.9),
    ("RVN", "Ravencoin", 1.7),
    ("XCH", "Chia", 2.1),
    ("XEC", "eCash", 1.6),
    ("XNO", "Nano", 1.4),
    ("NEAR", "NEAR Protocol", 2.0),
    ("ICP", "Internet Computer", 1.8),
)
SOURCE = "simulated"


@dataclass(frozen=True, slots=True)
class VerifyCase:
    """One configuration to time."""

    label: str
    max_concurrency: int
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class VerifyRow:
    """The result of one case."""

    case: VerifyCase
    summary: RunSummary
    faster_pct: float  # versus the first (sequential) case


def seed_cases() -> list[VerifyCase]:
    """The seed's three runs."""
    return [
        VerifyCase("sequential + delay", 1, 5.0),
        VerifyCase("max 3", 3),
        VerifyCase("max 5", 5),
    ]


def verify_coins(n: int | None = None, seed: int = 0) -> list[tuple[Coin, float]]:
    """The seed's 11 coins, or `n` synthetic ones with latencies drawn from the same range."""
    if n is None:
        rows = list(SEED_COINS)
    else:
        rng = random.Random(seed)
        low = min(lat for *_, lat in SEED_COINS)
        high = max(lat for *_, lat in SEED_COINS)
        rows = [
            (f"SIM{i:05d}", f"Simulated {i}", round(rng.uniform(low, high), 3)) for i in range(n)
        ]
    return [
        (Coin(symbol=s, name=name, ids={SOURCE: s.lower()}, chains=((SOURCE,),)), lat)
        for s, name, lat in rows
    ]


async def verify(
    *,
    time_scale: float = 1.0,
    n_coins: int | None = None,
    cases: list[VerifyCase] | None = None,
    sink: ResultSink | None = None,
) -> list[VerifyRow]:
    """Run every case through a fresh engine and compare each to the first."""
    if time_scale <= 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale}")
    coins = verify_coins(n_coins)
    latencies = {c.symbol: lat * time_scale for c, lat in coins}
    rows: list[VerifyRow] = []
    for case in cases or seed_cases():
        source = SimulatedSource(SOURCE, latencies=latencies)
        engine = Engine(
            {SOURCE: source},
            max_concurrency=case.max_concurrency,
            pause_after_job_s=case.delay_s * time_scale,
            sink=sink,
        )
        summary = await engine.run([c for c, _ in coins], trigger="verify")
        base = rows[0].summary.duration_s if rows else summary.duration_s
        rows.append(VerifyRow(case, summary, 100.0 * (1 - summary.duration_s / base)))
    return rows
