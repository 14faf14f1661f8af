"""W7, hidden lower rate: configured for 30 requests a minute, the upstream allows 10.

The upstream is the emulator in its own process, with ``capacity.hidden_rate = 10`` per
rolling ``hidden_window_s = 60`` per API key: a request over it gets the upstream's 429 with
a Retry-After until the window frees a start (counted as ``hidden_rejected``, not as a
violation). The client is configured like CoinGecko's demo plan: 3 in flight, 2 s apart, 30
a minute, one coin per request (``<SRC>_BATCH_SIZE=1``), latency 300 ms. The emulator
enforces the configured limits too, so a client that broke them would show violations, and
counts every request sent inside a Retry-After it had sent (``early_retry``).

Variants (each its own emulator process):

- ``3xpl, no headers``: 3xpl's 429 carries only Retry-After; the rate must be found from
  429s;
- ``3xpl, headers``: ``capacity.headers``: ``x-ratelimit-limit / -remaining / -reset`` on
  every answer;
- ``coingecko, limit on 429s``: CoinGecko sends ``x-ratelimit-*`` on its 429s (as the real
  one does), not on good answers.

Clients, all at once (one API key each, so each has its own hidden window): an in-process
`Engine` built by ``build_engine`` from the same variables as the CLI (memory sink), and
``python -m coinharvest collect`` (SQLite) in its own process; each with
``ADAPTIVE_LIMITS=on`` and ``off``. They run in real time for ``--duration`` (default 300 s):
the client's constants are real seconds (quiet period 60 s, probe after 1,200 s) and
neither the CLI's 60 s window nor the per-minute reading of ``x-ratelimit-limit`` can be
scaled.

A second part runs longer on a faster clock, engine only (``--long-minutes``, default 30
real minutes at ``--scale`` 0.1 = 180 s): 3xpl without headers, the window, spacing,
latency and the rate controller's constants (`RateTuning`, `ConcurrencyTuning`) all
scaled, so the 20-minute probe above a found limit is in it. Retry-After is whole seconds,
so at this scale a cooldown may last up to 10 s (real) longer than the window needs.

Measured per client, from its own attempt records (engine: `RunSummary.jobs`; CLI: the
database's ``job_events``), checked against the emulator's counters: requests, 429s,
**discovery** = the last 429 followed by two windows (120 s) without one, **429s until
discovery**, **share of 429 after discovery**, requests inside a Retry-After (emulator's
``early_retry`` for the client's key), other violations, and good answers per minute
against the hidden 10/min. For engine clients the learned rate is sampled every second.

Run: ``python bench/hidden_rate.py [--duration 300] [--long-minutes 30] [--json FILE]``
(about 5 minutes; every part runs at once). Prints a Markdown table and one JSON line.
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` when run as a script

from bench.adaptive_kit import (
    Attempt,
    EmulatorProcess,
    clean_env,
    db_attempts,
    markdown_table,
    run_cli,
    scaled_tuning,
    write_coins,
)
from coinharvest.config import load_settings
from coinharvest.engine import Engine
from coinharvest.engine.adaptive import AdaptiveOptions
from coinharvest.engine.build import build_engine
from coinharvest.engine.concurrency import ConcurrencyTuning
from coinharvest.engine.hooks import MemorySink
from coinharvest.engine.ratecontrol import RateTuning
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import Coin, SourceLimits
from coinharvest.sources.base import close_sources
from coinharvest.sources.registry import SPACING_GUARD_S, build_sources

PER_MINUTE = 30
CONFIGURED = SourceLimits(max_concurrency=3, min_interval_s=2.0, rate_per_window=PER_MINUTE)
HIDDEN = 10
WINDOW_S = 60.0
LATENCY_S = 0.3
#: Discovery: the last 429 followed by this many windows without one.
QUIET_WINDOWS = 2.0
PREFIX = {"3xpl": "THREEXPL", "coingecko": "COINGECKO"}
POLICIES = ("adaptive", "fixed")


@dataclass(frozen=True, slots=True)
class Variant:
    """One emulator configuration."""

    name: str
    source: str
    headers: bool


VARIANTS = (
    Variant("3xpl, no headers", "3xpl", False),
    Variant("3xpl, headers", "3xpl", True),
    Variant("coingecko, limit on 429s", "coingecko", False),
)


@dataclass(slots=True)
class ClientRun:
    """What one client did (times in the client's run-relative seconds, real units)."""

    part: str
    variant: str
    mode: str
    policy: str
    key: str
    duration_s: float
    attempts: list[Attempt]
    rates: list[tuple[float, float]] = field(default_factory=list)  # (s, learned per min)
    server: dict[str, Any] = field(default_factory=dict)
    exit: int | None = None


def _coins(source: str, n: int) -> list[Coin]:
    return [
        Coin(f"S{i:05d}", f"Synth {i:05d}", {source: f"synth-{i:05d}"}, ((source,),))
        for i in range(1, n + 1)
    ]


def _emulator_config(
    variant: Variant, scale: float, universe: int, limits: SourceLimits = CONFIGURED
) -> dict[str, Any]:
    return {
        "universe": universe,
        "upstreams": {
            variant.source: {
                "limits": {
                    "max_in_flight": limits.max_concurrency,
                    "min_interval_ms": limits.min_interval_s * scale * 1000.0,
                    "rate": limits.rate_per_window,
                    "window_s": limits.window_s * scale,
                    "retry_after": "always",
                },
                "latency": {"fixed_ms": LATENCY_S * scale * 1000.0},
                "capacity": {
                    "hidden_rate": HIDDEN,
                    "hidden_window_s": WINDOW_S * scale,
                    "headers": variant.headers,
                },
            }
        },
    }


def _env(variant: Variant, urls: dict[str, str], key: str, adaptive: bool) -> dict[str, str]:
    """The variables of one client (the CLI's; the engine builds from the same)."""
    p = PREFIX[variant.source]
    env = {
        f"{p}_API_KEY": key,
        f"{p}_BASE_URL": urls[variant.source],
        f"{p}_BATCH_SIZE": "1",
        "ADAPTIVE_LIMITS": "on" if adaptive else "off",
        "MAX_RETRIES": "10",
    }
    if variant.source == "3xpl":  # CoinGecko's demo figures (its own defaults with a key)
        env |= {
            f"MAX_{p}_CONCURRENCY": str(CONFIGURED.max_concurrency),
            f"{p}_MIN_INTERVAL_MS": f"{CONFIGURED.min_interval_s * 1000:g}",
            f"{p}_RATE_LIMIT_PER_MINUTE": str(CONFIGURED.rate_per_window),
        }
    return env


def _attempts(summary_jobs: Sequence[Any]) -> list[Attempt]:
    return [
        Attempt(j.source, j.started_s, j.ended_s, j.status.value, j.error) for j in summary_jobs
    ]


async def _sample_rates(engine: Engine, source: str, run: asyncio.Task[Any], every_s: float,
                        scale: float, into: list[tuple[float, float]]) -> None:  # fmt: skip
    started = time.monotonic()
    while True:
        view = next(v for v in engine.limit_views() if v.source == source)
        into.append(((time.monotonic() - started) / scale, view.rate_per_minute * scale))
        if run.done():
            return
        await asyncio.sleep(every_s * scale)


async def engine_client(
    emu: EmulatorProcess, variant: Variant, policy: str, duration_s: float, coins: int
) -> ClientRun:
    """An engine built as ``collect`` builds it (memory sink instead of the store)."""
    key = f"w7-engine-{policy}-{variant.source}-{int(variant.headers)}"
    adaptive = policy != "fixed"
    settings = load_settings(env=_env(variant, emu.urls, key, adaptive), env_file=None)
    sources = build_sources(settings, names=[variant.source])
    engine = build_engine(settings, sources, MemorySink())
    run = asyncio.create_task(
        engine.run(_coins(variant.source, coins), trigger="bench", deadline_s=duration_s)
    )
    rates: list[tuple[float, float]] = []
    sampler = asyncio.create_task(_sample_rates(engine, variant.source, run, 1.0, 1.0, rates))
    try:
        summary = await run
        await sampler  # its last sample is after the run
    finally:
        sampler.cancel()
        await close_sources(sources.values())
    return ClientRun(
        "real time", variant.name, "engine", policy, key, duration_s, _attempts(summary.jobs), rates
    )


async def cli_client(
    emu: EmulatorProcess,
    variant: Variant,
    policy: str,
    duration_s: float,
    coins: int,
    folder: Path,
) -> ClientRun:
    """``coinharvest collect`` with a database of its own."""
    key = f"w7-cli-{policy}-{variant.source}-{int(variant.headers)}"
    coins_file = write_coins(
        folder / f"{key}.toml", [(c.symbol, c.ids) for c in _coins(variant.source, coins)]
    )
    db = folder / f"{key}.db"
    env = clean_env() | _env(variant, emu.urls, key, policy == "adaptive")
    env |= {
        "COINS_FILE": str(coins_file),
        "COINHARVEST_DB": str(db),
        "COLLECT_TIMEOUT_MINUTES": f"{duration_s / 60.0:.6f}",
        "COLUMNS": "120",
    }
    result = await run_cli(env, folder, timeout_s=duration_s + 600)
    run = ClientRun(
        "real time",
        variant.name,
        "cli",
        policy,
        key,
        duration_s,
        db_attempts(db),
        exit=result.returncode,
    )
    return run


async def realtime_variant(
    variant: Variant, duration_s: float, coins: int, cli: bool
) -> list[ClientRun]:
    """Every client of one variant at once against its own emulator."""
    config = _emulator_config(variant, 1.0, coins)
    async with EmulatorProcess(config) as emu:
        await emu.reset()
        with tempfile.TemporaryDirectory() as tmp:
            jobs = [engine_client(emu, variant, pol, duration_s, coins) for pol in POLICIES]
            if cli:
                jobs += [
                    cli_client(emu, variant, pol, duration_s, coins, Path(tmp))
                    for pol in ("adaptive", "fixed")
                ]
            runs = list(await asyncio.gather(*jobs))
        stats, trace = await emu.stats(), await emu.trace(variant.source)
    _attach_server(runs, variant.source, stats, trace)
    return runs


async def long_part(minutes: float, scale: float) -> list[ClientRun]:
    """3xpl without headers, engine only, on a clock `scale` times as fast (the CLI's
    window and constants are real seconds)."""
    variant = VARIANTS[0]
    duration = minutes * 60.0
    coins = int(minutes * PER_MINUTE * 1.2) + 10
    async with EmulatorProcess(_emulator_config(variant, scale, coins)) as emu:
        await emu.reset()
        runs = list(
            await asyncio.gather(
                *(long_client(emu, variant, pol, duration, scale, coins) for pol in POLICIES)
            )
        )
        stats, trace = await emu.stats(), await emu.trace(variant.source)
    _attach_server(runs, variant.source, stats, trace)
    return runs


async def long_client(
    emu: EmulatorProcess, variant: Variant, policy: str, duration_s: float, scale: float, coins: int
) -> ClientRun:
    """An engine on the scaled clock: limits, window and constants times `scale`."""
    key = f"w7-long-{policy}"
    settings = load_settings(env=_env(variant, emu.urls, key, True), env_file=None)
    sources = build_sources(settings, names=[variant.source])
    limits = replace(
        CONFIGURED,
        min_interval_s=CONFIGURED.min_interval_s * scale + SPACING_GUARD_S,
        window_s=CONFIGURED.window_s * scale + SPACING_GUARD_S,
    )
    adaptive: bool | AdaptiveOptions = False
    if policy != "fixed":
        adaptive = AdaptiveOptions(
            concurrency=scaled_tuning(ConcurrencyTuning(), scale),
            rate=scaled_tuning(RateTuning(), scale),
        )
    engine = Engine(
        sources,
        max_concurrency=5,
        limits={variant.source: limits},
        batch_sizes={variant.source: 1},
        retry=RetryPolicy(max_attempts=11, max_pause_s=300.0, rng=random.Random(7)),
        job_timeout_s=65.0,
        sink=MemorySink(),
        adaptive=adaptive,
    )
    run = asyncio.create_task(
        engine.run(_coins(variant.source, coins), trigger="bench", deadline_s=duration_s * scale)
    )
    rates: list[tuple[float, float]] = []
    sampler = asyncio.create_task(_sample_rates(engine, variant.source, run, 1.0, scale, rates))
    try:
        summary = await run
        await sampler  # its last sample is after the run
    finally:
        sampler.cancel()
        await close_sources(sources.values())
    attempts = [
        Attempt(
            a.source,
            None if a.started_s is None else a.started_s / scale,
            None if a.ended_s is None else a.ended_s / scale,
            a.status,
            a.error,
        )
        for a in _attempts(summary.jobs)
    ]
    part = f"long, scale {scale:g}"
    return ClientRun(part, variant.name, "engine", policy, key, duration_s, attempts, rates)


def _attach_server(
    runs: Sequence[ClientRun], source: str, stats: dict[str, Any], trace: list[dict[str, Any]]
) -> None:
    """Each client's figures as the emulator saw them (by its key)."""
    recent = stats["violations"]["recent"]
    total_recent = len(recent)
    kinds_total = stats["violations"]["by_upstream"].get(source, {})
    for run in runs:
        mine = [v for v in recent if v["key"] == run.key]
        kinds: dict[str, int] = {}
        for v in mine:
            kinds[v["kind"]] = kinds.get(v["kind"], 0) + 1
        run.server = {
            "served_200": sum(1 for r in trace if r["key"] == run.key and r["status"] == 200),
            "requests": sum(
                keys.get(run.key, 0) for keys in stats["requests"].get(source, {}).values()
            ),
            "violations": kinds,
            "violation_details": [f"{v['kind']} at {v['at_s']:.1f} s: {v['detail']}" for v in mine],
            "violations_listed_all": total_recent < 200,
            "upstream_violations": kinds_total,
            "upstream_hidden_rejected": stats["hidden_rejected"].get(source, 0),
        }


# ----------------------------------------------------------------------------- analysis


def discovery(refused: Sequence[float], end_s: float, quiet_s: float) -> int | None:
    """Index of the last 429 of the search: the first one followed by `quiet_s` without
    another (None: every 429 is followed by another sooner; -1: no 429 at all)."""
    if not refused:
        return -1
    for i, t in enumerate(refused):
        following = refused[i + 1] if i + 1 < len(refused) else end_s
        if following - t >= quiet_s:
            return i
    return None


def analyse(run: ClientRun) -> dict[str, Any]:
    """The client's W7 figures (see the module docstring)."""
    sent = sorted(a.started_s for a in run.attempts if a.started_s is not None)
    refused = sorted(
        a.started_s for a in run.attempts if a.status == "rate_limited" and a.started_s is not None
    )
    good = [a for a in run.attempts if a.status == "ok"]
    found = discovery(refused, run.duration_s, QUIET_WINDOWS * WINDOW_S)
    figures: dict[str, Any] = {
        "part": run.part,
        "variant": run.variant,
        "mode": run.mode,
        "policy": run.policy,
        "requests": len(sent),
        "rate_limited": len(refused),
        "other_failures": sum(1 for a in run.attempts if a.status in ("retried", "failed")),
        "ok": len(good),
        "ok_per_min": round(len(good) / run.duration_s * 60.0, 2),
        "share_of_hidden": round(len(good) / run.duration_s * 60.0 / HIDDEN, 3),
        "refused_at_s": [round(t, 1) for t in refused[:20]],
        "server": run.server,
        "early_retry": run.server.get("violations", {}).get("early_retry", 0),
        "exit": run.exit,
    }
    if found is None:
        figures |= {"discovered_at_s": None, "until_discovery": None}
    else:
        at = 0.0 if found < 0 else refused[found]
        after = [t for t in sent if t > at]
        refused_after = [t for t in refused if t > at]
        figures |= {
            "discovered_at_s": round(at, 1),
            "until_discovery": found + 1,
            "requests_after": len(after),
            "rate_limited_after": len(refused_after),
            "share_after": round(len(refused_after) / len(after), 4) if after else None,
        }
    if run.rates:
        figures["learned_rate_end"] = round(run.rates[-1][1], 2)
        below = [t for t, r in run.rates if r > HIDDEN + 1e-9]
        figures["learned_rate_at_or_below_hidden_from_s"] = (
            round(below[-1] + 1.0, 1) if below else 0.0
        )
    return figures


def table(clients: Sequence[dict[str, Any]]) -> str:
    head = [
        "part",
        "upstream",
        "mode",
        "limits",
        "requests",
        "429s",
        "429s until discovery (at s)",
        "429 share after",
        "early retries",
        "other violations",
        "good answers/min (of 10)",
    ]
    rows = []
    for c in clients:
        if c["until_discovery"] is None:
            until = "not found"
            share = "–"
        else:
            until = f"{c['until_discovery']} ({c['discovered_at_s']:g})"
            share = (
                "–"
                if c.get("share_after") is None
                else (
                    f"{100 * c['share_after']:.2f} % "
                    f"({c['rate_limited_after']}/{c['requests_after']})"
                )
            )
        other = {k: v for k, v in c["server"].get("violations", {}).items() if k != "early_retry"}
        rows.append(
            [
                c["part"],
                c["variant"],
                c["mode"],
                c["policy"],
                c["requests"],
                c["rate_limited"],
                until,
                share,
                c["early_retry"],
                sum(other.values()),
                f"{c['ok_per_min']:.2f} ({100 * c['share_of_hidden']:.0f} %)",
            ]
        )
    return markdown_table(head, rows)


async def run(
    duration_s: float,
    long_minutes: float,
    scale: float,
    *,
    cli: bool = True,
    variants: Sequence[Variant] = VARIANTS,
) -> dict[str, Any]:
    """Every variant's clients and the long part, all at once."""
    coins = int(duration_s / 60.0 * PER_MINUTE * 1.2) + 10
    parts = [realtime_variant(v, duration_s, coins, cli) for v in variants]
    if long_minutes > 0:
        parts.append(long_part(long_minutes, scale))
    started = time.monotonic()
    runs = [r for group in await asyncio.gather(*parts) for r in group]
    return {
        "benchmark": "W7 hidden lower rate",
        "configured_per_min": PER_MINUTE,
        "hidden_per_window": HIDDEN,
        "window_s": WINDOW_S,
        "duration_s": duration_s,
        "long_minutes": long_minutes,
        "long_scale": scale,
        "wall_s": round(time.monotonic() - started, 1),
        "clients": [analyse(r) for r in runs],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="real-time part, s")
    parser.add_argument("--long-minutes", type=float, default=30.0, help="0: no long part")
    parser.add_argument("--scale", type=float, default=0.1, help="time scale of the long part")
    parser.add_argument("--no-cli", action="store_true", help="engine clients only")
    parser.add_argument("--json", type=Path, help="save the result here too")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.duration, args.long_minutes, args.scale, cli=not args.no_cli))
    print(
        f"W7 hidden lower rate: configured {PER_MINUTE}/min, the upstream "
        f"allows {HIDDEN} per rolling {WINDOW_S:g} s; real time for {args.duration:g} s, and "
        f"{args.long_minutes:g} min at time scale {args.scale:g} (engine); figures in real "
        "seconds.\n"
    )
    print(table(result["clients"]))
    print()
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
