"""Which in-flight controller? Ours against Envoy's gradient, Netflix's Gradient2, Vector's ARC.

The same engine, the same virtual-clock server (hidden capacity, FIFO queue, service time
200 ms with optional jitter, capacity 8 → 2 → 8), only the controller's update rule differs.
All three use our sample windows and our no-load floor (the least window 10th percentile),
so what is compared is the rule itself:

- ``queue`` (ours, engine/concurrency.py): queue = L × (1 − base / mean); +1 below 0.5,
  down to L − queue + 0.5 above 1.5.
- ``envoy``: gradient = clamp(base × 1.25 / mean, 0.5, 2); L = floor(L g + sqrt(L g))
  (Envoy adaptive concurrency, gradient controller: minRTT buffer 25 %, sqrt headroom).
- ``gradient2``: long = EMA(mean) (factor 2/601 after 10 windows); g = clamp(1.5 long /
  mean, 0.5, 1); L = 0.8 L + 0.2 (L g + 4) (Netflix Gradient2Limit defaults).
- ``vector``: past = EWMA of window means and their variance (alpha 0.4); +1 when the
  limit was reached and mean ≤ past mean; × 0.9 (floored) when mean ≥ past mean + 2.5 ×
  deviation (Vector ARC, src/sinks/util/adaptive_concurrency/controller.rs defaults).
- ``fixed``: the ceiling, as with ``ADAPTIVE_LIMITS=off``.

Run: ``python bench/controller_compare.py [--jitter 0.2] [--json]``. Virtual time: a
90-second scenario runs in a few seconds and its figures are exact for the model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from vclock import run_virtual

from coinharvest.engine import Engine
from coinharvest.engine.concurrency import ConcurrencyControl
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import Coin, Observation, SourceLimits
from coinharvest.sources.base import FetchResult, Source

STEPS = ((0.0, 8), (30.0, 2), (60.0, 8))
END_S = 90.0
CEILING = 16


class Envoy(ConcurrencyControl):
    """Envoy's gradient update rule on our windows (see the module docstring)."""

    def _decide(self, mean: float, used: int) -> None:
        base = self.no_load_rtt()
        if base is None:
            return
        g = min(2.0, max(0.5, base * 1.25 / mean))
        scaled = self.limit * g
        self.limit = float(min(self.ceiling, max(1, math.floor(scaled + math.sqrt(scaled)))))


class Gradient2(ConcurrencyControl):
    """Netflix Gradient2's update rule on our windows (see the module docstring)."""

    long: float | None = None
    seen: int = 0

    def _decide(self, mean: float, used: int) -> None:
        self.seen += 1
        factor = 1.0 / self.seen if self.seen <= 10 else 2.0 / 601.0
        self.long = mean if self.long is None else self.long + factor * (mean - self.long)
        if self.long / mean > 2:
            self.long *= 0.95
        if used < self.limit / 2:
            return
        g = min(1.0, max(0.5, 1.5 * self.long / mean))
        new = 0.8 * self.limit + 0.2 * (self.limit * g + 4)
        self.limit = min(float(self.ceiling), max(1.0, new))


class VectorArc(ConcurrencyControl):
    """Vector's ARC update rule on our windows (see the module docstring)."""

    past: tuple[float, float] | None = None  # EWMA mean, EWMA variance

    def _decide(self, mean: float, used: int) -> None:
        if self.past is None:
            self.past = (mean, 0.0)
            return
        past_mean, past_var = self.past
        if used >= int(self.limit) and mean <= past_mean:
            self.limit = min(float(self.ceiling), float(int(self.limit) + 1))
        elif mean >= past_mean + 2.5 * math.sqrt(past_var):
            self.limit = float(max(1, int(int(self.limit) * 0.9)))
        diff = mean - past_mean
        incr = 0.4 * diff
        self.past = (past_mean + incr, (1 - 0.4) * (past_var + diff * incr))


CONTROLLERS: dict[str, type[ConcurrencyControl] | None] = {
    "queue": ConcurrencyControl,
    "envoy": Envoy,
    "gradient2": Gradient2,
    "vector": VectorArc,
    "fixed": None,
}


@dataclass
class Server(Source):
    """Hidden capacity per `STEPS`, FIFO queue, service time 200 ms × U(1-j, 1+j)."""

    jitter: float = 0.0
    name: str = "server"
    in_service: int = 0
    waiting: list[asyncio.Future[None]] = field(default_factory=list)
    served: list[tuple[float, float]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def __post_init__(self) -> None:
        self.default_limits = SourceLimits(max_concurrency=CEILING)
        self.batch_size = 1

    @staticmethod
    def capacity(t: float) -> int:
        return [k for at, k in STEPS if at <= t][-1]

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        loop = asyncio.get_running_loop()
        arrival = loop.time()
        turn: asyncio.Future[None] = loop.create_future()
        self.waiting.append(turn)
        self._pump()
        await turn
        try:
            await asyncio.sleep(0.2 * self.rng.uniform(1 - self.jitter, 1 + self.jitter))
        finally:
            self.in_service -= 1
            self._pump()
        self.served.append((arrival, loop.time()))
        now = datetime.now(UTC)
        return {c.symbol: [Observation(c.symbol, self.name, "price_usd", 1.0, now)] for c in coins}

    def _pump(self) -> None:
        while self.waiting and self.in_service < self.capacity(asyncio.get_running_loop().time()):
            self.in_service += 1
            self.waiting.pop(0).set_result(None)


def _scenario(kind: str, jitter: float) -> dict[str, float | str]:
    server = Server(jitter=jitter)
    engine = Engine(
        {"server": server},
        max_concurrency=64,
        retry=RetryPolicy(rng=random.Random(1)),
        adaptive=CONTROLLERS[kind] is not None,
    )
    controller_cls = CONTROLLERS[kind]
    if controller_cls is not None:
        engine.adaptations["server"].concurrency = controller_cls(CEILING)
    coins = [Coin(f"C{i:05d}", "c", {"server": "c"}, (("server",),)) for i in range(4000)]
    caps: list[tuple[float, int]] = []

    def limit() -> int:  # the controller's limit (a probe window's half is not counted)
        adaptation = engine.adaptations.get("server")
        if adaptation is None:
            return engine.limiters["server"].cap
        return max(1, int(adaptation.concurrency.limit))

    async def go() -> None:
        async def sample() -> None:
            loop = asyncio.get_running_loop()
            for _ in range(2 * int(END_S) * 10):
                caps.append((loop.time(), limit()))
                pumps = server._pump  # capacity rises at step times with nobody leaving
                pumps()
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        run = asyncio.create_task(engine.run(coins))
        await asyncio.sleep(END_S)
        engine.stop()
        await run
        sampler.cancel()

    run_virtual(go())
    return _figures(kind, caps, server.served)


def _settle(caps: list[tuple[float, int]], start: float, end: float, k: int) -> float:
    """Seconds after `start` until the cap stays within ±1 of `k` until `end`."""
    last_out = start
    for t, cap in caps:
        if start <= t < end and abs(cap - k) > 1:
            last_out = t
    return last_out - start


def _figures(
    kind: str, caps: list[tuple[float, int]], served: list[tuple[float, float]]
) -> dict[str, float | str]:
    def rate(a: float, b: float) -> float:
        return sum(1 for _, e in served if a <= e < b) / (b - a)

    def rtt(a: float, b: float) -> float:
        return statistics.fmean(e - s for s, e in served if a <= e < b)

    oracle = {"8a": 40.0, "2": 10.0, "8b": 40.0}
    return {
        "controller": kind,
        "settle_down_s": round(_settle(caps, 30.0, 60.0, 2), 1),
        "settle_up_s": round(_settle(caps, 60.0, END_S, 8), 1),
        "cap_mean_8": round(statistics.fmean(c for t, c in caps if 10 <= t < 30), 2),
        "cap_mean_2": round(statistics.fmean(c for t, c in caps if 40 <= t < 60), 2),
        "throughput_steady_pct": round(
            100 * min(rate(10, 30) / oracle["8a"], rate(40, 60) / oracle["2"]), 1
        ),
        "throughput_all_pct": round(100 * rate(0, END_S) / (40 * 60 + 10 * 30) * END_S, 1),
        "rtt_ms_at_2": round(1000 * rtt(40, 60)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jitter", type=float, default=0.0, help="service time × U(1±j)")
    parser.add_argument("--json", action="store_true", help="one JSON line per controller")
    args = parser.parse_args(argv)
    rows = [_scenario(kind, args.jitter) for kind in CONTROLLERS]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
