"""W6, capacity step: an upstream whose hidden capacity goes 8 → 2 → 8 requests at once.

The upstream is the emulator's 3xpl in its own process (``python -m coinharvest.emulator``)
with ``[upstreams.3xpl.capacity]``: FIFO queue in front of K service slots, service time
200 ms, K = 8 from 0 s, 2 from 20 s, 8 again from 40 s, the run ends at 70 s. The client is
configured for 16 in flight (``MAX_THREEXPL_CONCURRENCY=16``; the emulator counts a 17th as
a violation), no spacing, no rate limit that binds (``THREEXPL_RATE_LIMIT_PER_MINUTE=100000``),
one chain per request (``THREEXPL_BATCH_SIZE=1``), 3,000 synthetic chains, global cap 32.
Jobs not started when the schedule ends are deferred (the run's deadline).

Cases, one after the other against the same emulator (reset before each):

- engine, ``oracle``: an in-process `Engine` with the real 3xpl source (httpx) and fixed
  limits whose in-flight cap a task sets to the true capacity at each step
  (``engine.limiters["3xpl"].adapt(K, 0)``);
- engine, ``fixed``: ``ADAPTIVE_LIMITS=off`` (16 in flight throughout);
- engine, ``adaptive``: ``ADAPTIVE_LIMITS=on`` with the concurrency controller's constants
  on the bench's clock (`adaptive_kit.scaled_tuning`): the real-time behaviour, sped up;
- engine, ``adaptive (constants unscaled)``: as shipped, on the sped-up clock (what the
  CLI gets too: its constants can't be scaled);
- cli, ``fixed`` / ``adaptive``: ``python -m coinharvest collect`` with SQLite, the same
  variables, in its own process.

Time scale: every time of the schedule and the service time are multiplied by ``--scale``
(default 0.5: 200 ms → 100 ms, the 70 s schedule in 35 s); every figure is reported in
real-time units (divided by the scale). At 0.25 the client's own time per request (HTTP,
JSON, the event loop: a few ms) is a 4× larger share of the service time than in reality,
and the limit settles higher (docs/BENCHMARKS.md has both). The steps' clock starts at the
first request the emulator sees (``POST /__emulator__/config`` then), so the CLI's start-up
does not eat into the first phase.

Measured, from the emulator's trace (the same way for every case): completions per second
per phase (whole phases and steady windows 5-20 s, 25-40 s, 55-70 s) against the oracle's;
answer times at the server (arrival to end: queue + service) per phase; requests at the
server (in service + queued) over time, whose maximum per 0.25 s bin is the client's limit
seen from outside; from it, how long after each step the limit first gets within ±1 of
the capacity, and the share of the rest of the phase it spends there (the controller's
probe windows at half the limit, one every 20 s, fall outside). In engine mode the client's
own ``cap`` is sampled too (every 0.25 s real). Ceiling: the emulator's concurrency
violations and the trace's maximum.

Run: ``python bench/capacity_step.py [--scale 0.5] [--no-cli] [--json FILE]`` (about
4 minutes at the default scale, 2 at 0.25). Prints two Markdown tables and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` when run as a script

from bench.adaptive_kit import (
    EmulatorProcess,
    clean_env,
    markdown_table,
    percentile,
    run_cli,
    scaled_tuning,
    write_coins,
)
from coinharvest.config import load_settings
from coinharvest.engine import Engine
from coinharvest.engine.adaptive import AdaptiveOptions
from coinharvest.engine.concurrency import ConcurrencyTuning
from coinharvest.engine.hooks import MemorySink
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import Coin
from coinharvest.sources.base import close_sources
from coinharvest.sources.registry import build_sources, effective_batch_sizes, effective_limits

SOURCE = "3xpl"
CEILING = 16
GLOBAL_CAP = 32
SERVICE_S = 0.2
#: (from real second, capacity); the run ends at `END_S`.
STEPS: tuple[tuple[float, int], ...] = ((0.0, 8), (20.0, 2), (40.0, 8))
END_S = 70.0
#: Steady windows: each phase minus the time the targets allow for converging.
STEADY: tuple[tuple[float, float], ...] = ((5.0, 20.0), (25.0, 40.0), (55.0, 70.0))
DECREASE_TARGET_S = 5.0
INCREASE_TARGET_S = 15.0
BIN_S = 0.25  # real seconds per sample of the limit
COINS = 3000

ENGINE_CASES = ("oracle", "fixed", "adaptive", "adaptive (constants unscaled)")
CLI_CASES = ("fixed", "adaptive")


@dataclass(frozen=True, slots=True)
class Params:
    """The schedule: real times × `length`, then run `scale` times as fast."""

    scale: float = 0.5
    length: float = 1.0
    coins: int = COINS
    cli: bool = True
    engine_cases: tuple[str, ...] = ENGINE_CASES
    cli_cases: tuple[str, ...] = CLI_CASES

    def real(self, t: float) -> float:
        """A time of the schedule, stretched by `length` (real seconds)."""
        return t * self.length

    @property
    def end_s(self) -> float:
        return self.real(END_S)

    def steps(self) -> list[tuple[float, int]]:
        return [(self.real(at), k) for at, k in STEPS]

    def phases(self) -> list[tuple[float, float, int]]:
        """(start, end, capacity) per phase, real seconds."""
        steps = self.steps()
        ends = [at for at, _ in steps[1:]] + [self.end_s]
        return [(at, end, k) for (at, k), end in zip(steps, ends, strict=True)]

    def steady(self) -> list[tuple[float, float]]:
        return [(self.real(a), self.real(b)) for a, b in STEADY]


@dataclass(slots=True)
class CaseRun:
    """What one case left: the emulator's trace and stats, times, the client's figures."""

    mode: str
    policy: str
    epoch: float  # monotonic time of the trace's zero
    step_epoch: float  # monotonic time of the steps' zero
    trace: list[dict[str, Any]]
    stats: dict[str, Any]
    samples: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, cap)
    client: dict[str, Any] = field(default_factory=dict)


def _coins(n: int) -> list[Coin]:
    return [
        Coin(f"S{i:05d}", f"Synth {i:05d}", {SOURCE: f"synth-{i:05d}"}, ((SOURCE,),))
        for i in range(1, n + 1)
    ]


def _env(urls: dict[str, str], adaptive: bool) -> dict[str, str]:
    """The variables the CLI runs with (the engine cases build from the same)."""
    return {
        "THREEXPL_BASE_URL": urls[SOURCE],
        "THREEXPL_BATCH_SIZE": "1",
        "MAX_THREEXPL_CONCURRENCY": str(CEILING),
        "THREEXPL_MIN_INTERVAL_MS": "0",
        "THREEXPL_RATE_LIMIT_PER_MINUTE": "100000",
        "MAX_COLLECTION_CONCURRENCY": str(GLOBAL_CAP),
        "ADAPTIVE_LIMITS": "on" if adaptive else "off",
    }


def _emulator_config(p: Params) -> dict[str, Any]:
    return {
        "universe": p.coins,
        "upstreams": {
            SOURCE: {
                "limits": {"max_in_flight": CEILING, "retry_after": "always"},
                "latency": {"fixed_ms": SERVICE_S * p.scale * 1000.0},
                "capacity": {"concurrent": STEPS[0][1], "steps": []},
            }
        },
    }


def _steps_patch(p: Params) -> dict[str, Any]:
    steps = [{"at_s": at * p.scale, "concurrent": k} for at, k in p.steps()[1:]]
    return {"upstreams": {SOURCE: {"capacity": {"steps": steps}}}}


async def _fresh(emu: EmulatorProcess) -> float:
    """No steps (capacity 8), counters and trace cleared; the trace's epoch."""
    await emu.configure({"upstreams": {SOURCE: {"capacity": {"steps": []}}}})
    return await emu.reset()


async def _start_steps(emu: EmulatorProcess, p: Params) -> float:
    """At the first request, start the steps' clock; its monotonic time."""
    await emu.wait_for_requests(SOURCE)
    return await emu.configure(_steps_patch(p))


def _engine(emu: EmulatorProcess, p: Params, policy: str) -> Engine:
    settings = load_settings(
        env=_env(emu.urls, policy != "oracle" and policy != "fixed"), env_file=None
    )
    sources = build_sources(settings, names=[SOURCE])
    adaptive: bool | AdaptiveOptions = False
    if policy == "adaptive":
        adaptive = AdaptiveOptions(concurrency=scaled_tuning(ConcurrencyTuning(), p.scale))
    elif policy.startswith("adaptive"):
        adaptive = True
    return Engine(  # as `build_engine` builds it, with the adaptive options above
        sources,
        max_concurrency=settings.max_collection_concurrency,
        limits=effective_limits(settings, sources),
        batch_sizes=effective_batch_sizes(settings, sources),
        retry=RetryPolicy(
            max_attempts=settings.max_retries + 1,
            max_pause_s=settings.max_cooldown_seconds,
            rng=random.Random(7),
        ),
        job_timeout_s=settings.http_timeout_seconds * 2 + 5,
        sink=MemorySink(),
        adaptive=adaptive,
    )


async def engine_case(emu: EmulatorProcess, p: Params, policy: str) -> CaseRun:
    """One in-process engine run (see the module docstring for `policy`)."""
    engine = _engine(emu, p, policy)
    limiter = engine.limiters[SOURCE]
    if policy == "oracle":
        limiter.adapt(STEPS[0][1], 0.0)
    epoch = await _fresh(emu)
    deadline = p.end_s * p.scale + 0.5 * p.scale
    run = asyncio.create_task(engine.run(_coins(p.coins), trigger="bench", deadline_s=deadline))
    step_epoch = await _start_steps(emu, p)
    samples: list[tuple[float, int]] = []

    async def sample() -> None:
        while not run.done():
            samples.append((time.monotonic(), limiter.cap))
            await asyncio.sleep(BIN_S * p.scale)

    async def oracle() -> None:
        for at, capacity in p.steps()[1:]:
            await asyncio.sleep(max(0.0, step_epoch + at * p.scale - time.monotonic()))
            limiter.adapt(capacity, 0.0)

    helpers = [asyncio.create_task(sample())]
    if policy == "oracle":
        helpers.append(asyncio.create_task(oracle()))
    try:
        summary = await run
    finally:
        for task in helpers:
            task.cancel()
        await close_sources(engine.sources.values())
    client = {
        "requests": summary.requests,
        "coins_ok": summary.coins_ok,
        "coins_deferred": summary.coins_deferred,
        "coins_failed": summary.coins_failed,
        "max_in_flight": summary.max_in_flight,
    }
    trace, stats = await emu.trace(SOURCE), await emu.stats()
    return CaseRun("engine", policy, epoch, step_epoch, trace, stats, samples, client)


async def cli_case(emu: EmulatorProcess, p: Params, policy: str, folder: Path) -> CaseRun:
    """One ``coinharvest collect`` (fresh SQLite database: nothing learned before)."""
    coins_file = folder / "coins.toml"
    if not coins_file.exists():
        write_coins(coins_file, [(c.symbol, c.ids) for c in _coins(p.coins)])
    minutes = (p.end_s * p.scale + 0.5 * p.scale) / 60.0
    env = clean_env() | _env(emu.urls, policy == "adaptive")
    env |= {
        "COINS_FILE": str(coins_file),
        "COINHARVEST_DB": str(folder / f"w6-{policy}-{time.monotonic_ns()}.db"),
        "COLLECT_TIMEOUT_MINUTES": f"{minutes:.6f}",
        "COLUMNS": "120",
    }
    epoch = await _fresh(emu)
    cli = asyncio.create_task(run_cli(env, folder))
    step_epoch = await _start_steps(emu, p)
    result = await cli
    client = {"exit": result.returncode, "wall_s": round(result.wall_s, 2)}
    trace, stats = await emu.trace(SOURCE), await emu.stats()
    return CaseRun("cli", policy, epoch, step_epoch, trace, stats, [], client)


# ----------------------------------------------------------------------------- analysis


def in_flight_bins(
    spans: Sequence[tuple[float, float]], start: float, end: float, bin_s: float
) -> list[tuple[float, int]]:
    """Per bin of `bin_s` from `start` to `end`: (bin start, most requests at the server
    at once during it), from (arrival, end) spans."""
    events = sorted([(a, 1) for a, _ in spans] + [(e, -1) for _, e in spans])
    bins: list[tuple[float, int]] = []
    level, i, t = 0, 0, start
    while i < len(events) and events[i][0] < start:
        level += events[i][1]
        i += 1
    while t < end - 1e-9:
        top = level
        while i < len(events) and events[i][0] < t + bin_s:
            level += events[i][1]
            top = max(top, level)
            i += 1
        bins.append((t, top))
        t += bin_s
    return bins


def band(
    series: Sequence[tuple[float, int]], start: float, end: float, target: int
) -> dict[str, float | None]:
    """How the limit in `series` (time, value) met `target` ± 1 between `start` and `end`:
    ``first_s``, seconds after `start` until the first sample inside the band (None:
    never), and ``in_band``, the share of the samples from then to `end` inside it (the
    controller's probe windows at half the limit fall outside)."""
    inside = [(t, v) for t, v in series if start <= t < end]
    first = next((i for i, (_, v) in enumerate(inside) if abs(v - target) <= 1), None)
    if first is None:
        return {"first_s": None, "in_band": None}
    rest = inside[first:]
    share = sum(1 for _, v in rest if abs(v - target) <= 1) / len(rest)
    return {"first_s": round(inside[first][0] - start, 2), "in_band": round(share, 3)}


def max_level(spans: Sequence[tuple[float, float]]) -> int:
    """The most (arrival, end) spans open at once."""
    events = sorted([(a, 1) for a, _ in spans] + [(e, -1) for _, e in spans])
    level = top = 0
    for _, step in events:
        level += step
        top = max(top, level)
    return top


def analyse(run: CaseRun, p: Params) -> dict[str, Any]:
    """The case's figures on the steps' real-time axis (see the module docstring)."""
    shift = run.step_epoch - run.epoch
    served = [
        ((r["arrival_s"] - shift) / p.scale, (r["end_s"] - shift) / p.scale, r["status"])
        for r in run.trace
    ]
    spans = [(a, e) for a, e, _ in served]
    ok = [(a, e) for a, e, status in served if status == 200]
    phases = p.phases()

    def rate(lo: float, hi: float) -> float:
        return sum(1 for _, e in ok if lo <= e < hi) / (hi - lo)

    def settle(series: Sequence[tuple[float, int]]) -> list[dict[str, float | None]]:
        return [band(series, lo, hi, k) for lo, hi, k in phases[1:]]

    def means(series: Sequence[tuple[float, int]]) -> list[float | None]:
        return [_mean([v for t, v in series if lo <= t < hi]) for lo, hi in p.steady()]

    server = in_flight_bins(spans, 0.0, p.end_s, BIN_S)
    answers = []
    for lo, hi, _ in phases:
        times = [(e - a) * 1000.0 for a, e in ok if lo <= a < hi]
        answers.append([round(percentile(times, q)) for q in (0.5, 0.95)] if times else None)
    figures: dict[str, Any] = {
        "mode": run.mode,
        "policy": run.policy,
        "served": len(served),
        "non_200": sum(1 for *_, status in served if status != 200),
        "throughput_phase": [round(rate(lo, hi), 2) for lo, hi, _ in phases],
        "throughput_steady": [round(rate(lo, hi), 2) for lo, hi in p.steady()],
        "throughput_run": round(rate(0.0, p.end_s), 2),
        "answer_ms_p50_p95": answers,
        "band": settle(server),
        "limit_mean": means(server),
        "max_in_flight_trace": max_level(spans),
        "emulator_max_in_flight": max(
            run.stats["max_in_flight"].get(SOURCE, {}).values(), default=0
        ),
        "violations": run.stats["violations"]["by_upstream"].get(SOURCE, {}),
        "client": run.client,
    }
    if run.samples:
        client = [((t - run.step_epoch) / p.scale, cap) for t, cap in run.samples]
        figures["band_client_cap"] = settle(client)
        figures["limit_mean_client_cap"] = means(client)
    return figures


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


# ----------------------------------------------------------------------------- report


def _pct(value: float, base: float) -> str:
    return f"{value:.1f}/s ({100.0 * value / base:.0f} %)" if base else f"{value:.1f}/s"


def _band(figures: dict[str, Any]) -> str:
    if figures["first_s"] is None:
        return "never"
    return f"{figures['first_s']:.1f} ({100.0 * figures['in_band']:.0f} %)"


def bounds(p: Params) -> dict[str, Any]:
    """Completions per second a server of capacity K and service time 200 ms allows."""
    phases = p.phases()
    steady = []
    for lo, _ in p.steady():
        k = next(k for a, b, k in phases if a <= lo < b)
        steady.append(k / SERVICE_S)
    served = sum((b - a) * k / SERVICE_S for a, b, k in phases)
    return {"steady": steady, "run": served / p.end_s}


def tables(cases: Sequence[dict[str, Any]], p: Params) -> str:
    """The throughput-and-convergence table and the answer-time table."""
    oracle = next((c for c in cases if c["policy"] == "oracle"), cases[0])
    phases = p.phases()
    head = [
        "mode",
        "limits",
        *(
            f"steady K={k} ({lo:g}-{hi:g} s)"
            for (lo, hi), (_, _, k) in zip(p.steady(), phases, strict=True)
        ),
        f"whole run (0-{p.end_s:g} s)",
        "±1 after 8→2: s (time in band)",
        "±1 after 2→8: s (time in band)",
        "mean limit K=8 / 2 / 8",
        "max in flight",
        "violations",
    ]
    bound = bounds(p)
    rows: list[list[object]] = [
        [
            "–",
            "capacity bound (K / 200 ms)",
            *(f"{b:.1f}/s" for b in bound["steady"]),
            f"{bound['run']:.1f}/s",
            *["–"] * 5,
        ]
    ]
    for c in cases:
        steady = [
            _pct(v, b)
            for v, b in zip(c["throughput_steady"], oracle["throughput_steady"], strict=True)
        ]
        settle = c.get("band_client_cap", c["band"])
        means = c.get("limit_mean_client_cap", c["limit_mean"])
        rows.append(
            [
                c["mode"],
                c["policy"],
                *steady,
                _pct(c["throughput_run"], oracle["throughput_run"]),
                _band(settle[0]),
                _band(settle[1]),
                " / ".join("–" if m is None else f"{m:g}" for m in means),
                c["max_in_flight_trace"],
                sum(c["violations"].values()),
            ]
        )
    first = markdown_table(head, rows)
    head2 = ["mode", "limits"]
    head2 += [f"answer p50 / p95 K={k} ({lo:g}-{hi:g} s), ms" for lo, hi, k in phases]
    rows2 = [
        [c["mode"], c["policy"]]
        + ["–" if a is None else f"{a[0]:,} / {a[1]:,}" for a in c["answer_ms_p50_p95"]]
        for c in cases
    ]
    return first + "\n\n" + markdown_table(head2, rows2)


def targets(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each adaptive case against the W6 targets (throughput against the oracle's)."""
    oracle = next(c for c in cases if c["policy"] == "oracle")
    verdicts: dict[str, Any] = {}
    for c in cases:
        if not c["policy"].startswith("adaptive"):
            continue
        settle = [b["first_s"] for b in c.get("band_client_cap", c["band"])]
        steady = [
            v / b for v, b in zip(c["throughput_steady"], oracle["throughput_steady"], strict=True)
        ]
        verdicts[f"{c['mode']} {c['policy']}"] = {
            "steady_min_share": round(min(steady), 3),
            "steady_ok": min(steady) >= 0.9,
            "run_share": round(c["throughput_run"] / oracle["throughput_run"], 3),
            "run_ok": c["throughput_run"] >= 0.8 * oracle["throughput_run"],
            "decrease_s": settle[0],
            "decrease_ok": settle[0] is not None and settle[0] <= DECREASE_TARGET_S,
            "increase_s": settle[1],
            "increase_ok": settle[1] is not None and settle[1] <= INCREASE_TARGET_S,
            "ceiling_ok": c["max_in_flight_trace"] <= CEILING and not c["violations"],
        }
    return verdicts


def ratios(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """CLI over engine, per policy present in both modes."""
    found: dict[str, Any] = {}
    by = {(c["mode"], c["policy"]): c for c in cases}
    for policy in CLI_CASES:
        cli, eng = by.get(("cli", policy)), by.get(("engine", policy))
        if policy == "adaptive":
            eng = by.get(("engine", "adaptive (constants unscaled)"), eng)
        if cli is None or eng is None:
            continue
        found[policy] = {
            "throughput_run": round(cli["throughput_run"] / eng["throughput_run"], 3),
            "answer_p95_by_phase": [
                round(a[1] / b[1], 2) if a and b else None
                for a, b in zip(cli["answer_ms_p50_p95"], eng["answer_ms_p50_p95"], strict=True)
            ],
        }
    return found


async def run(p: Params) -> dict[str, Any]:
    """Every case, one after the other, against one emulator process."""
    cases: list[dict[str, Any]] = []
    async with EmulatorProcess(_emulator_config(p)) as emu:
        for policy in p.engine_cases:
            cases.append(analyse(await engine_case(emu, p, policy), p))
            print(f"# engine {policy}: done", file=sys.stderr, flush=True)
        if p.cli:
            with tempfile.TemporaryDirectory() as tmp:
                for policy in p.cli_cases:
                    cases.append(analyse(await cli_case(emu, p, policy, Path(tmp)), p))
                    print(f"# cli {policy}: done", file=sys.stderr, flush=True)
    return {
        "benchmark": "W6 capacity step",
        "scale": p.scale,
        "length": p.length,
        "coins": p.coins,
        "service_ms": SERVICE_S * 1000,
        "steps": p.steps(),
        "end_s": p.end_s,
        "ceiling": CEILING,
        "bound_per_s": bounds(p),
        "cases": cases,
        "targets": targets(cases) if any(c["policy"] == "oracle" for c in cases) else {},
        "cli_over_engine": ratios(cases),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.5, help="time scale (default 0.5)")
    parser.add_argument("--length", type=float, default=1.0, help="stretch the schedule")
    parser.add_argument("--coins", type=int, default=COINS)
    parser.add_argument("--no-cli", action="store_true", help="engine cases only")
    parser.add_argument("--json", type=Path, help="save the result here too")
    args = parser.parse_args(argv)
    p = Params(scale=args.scale, length=args.length, coins=args.coins, cli=not args.no_cli)
    result = asyncio.run(run(p))
    print(
        f"W6 capacity step: time scale {p.scale:g} (service {SERVICE_S * p.scale * 1000:g} ms "
        f"for 200 ms); every figure in real-time units.\n"
    )
    print(tables(result["cases"], p))
    print()
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
