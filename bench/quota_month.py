"""W8, a month's quota: CoinGecko's demo plan (10,000 requests a month) over a schedule.

A month can't be run in real time, so the month is simulated: the real `Engine` with the
real CoinGecko source (httpx) against the emulator in its own process, the real SQLite
`Store` as sink *and* as the limit store (so every run's quota counts come from the
database, as ``collect`` in cron and the service get them), and a wall clock that the bench
sets to each scheduled time (``Engine(wall=...)``). Each run sends its requests at once:
the spacing and the per-minute window are left out (they would make the month take days
and have nothing to do with the quota).

``Engine(wall=...)`` governs the quota's days and months only; the run's ``started_at``
(``engine/engine.py``) and ``finished_at`` (``storage/store.py``) are stamped with the real
clock, and the database counts requests by them. So the bench also substitutes the
simulated time for ``datetime.now`` in those two modules for the simulation's duration
(`simulated_now`); in production both clocks are the same one.

Schedules, each on a fresh database: 4 coins a run, one per request
(``COINGECKO_BATCH_SIZE=1``), in June 2031 (30 days), then the first two hours of July:

- every 10 minutes: 4 × 144 × 30 = 17,280 requests, more than the month holds;
- every 20 minutes: 4 × 72 × 30 = 8,640, which fits (no deferral expected).

Measured: requests sent in the month (the runs' own totals, the database's count and the
emulator's), against the quota; runs complete / partial / deferred, per day; when each
day's deferrals begin; the longest gap between runs that collected anything and between
complete runs; July's first runs (the month resets).

A second, short part runs ``coinharvest collect`` as users run it, in real time: four runs
in a row on one SQLite database with ``COINGECKO_QUOTA_PER_DAY=10`` (4 requests a run): the
quota counts cross processes through the database (expected 4, 4, 2, 0 requests).

Run: ``python bench/quota_month.py [--json FILE]`` (about 2 minutes). Prints Markdown
tables and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` when run as a script

import coinharvest.engine.engine as engine_module
import coinharvest.storage.store as store_module
from bench.adaptive_kit import EmulatorProcess, clean_env, markdown_table, run_cli, write_coins
from coinharvest.config import load_settings
from coinharvest.engine import Engine
from coinharvest.engine.adaptive import AdaptiveOptions, key_id
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import Coin
from coinharvest.sources.base import close_sources
from coinharvest.sources.registry import build_sources, effective_limits
from coinharvest.storage import Store

SOURCE = "coingecko"
QUOTA = 10_000
COINS_PER_RUN = 4
START = datetime(2031, 6, 1, tzinfo=UTC)
SCHEDULES_MIN = (10.0, 20.0)
AFTER_MONTH = timedelta(hours=2)
CLI_DAILY_QUOTA = 10
CLI_RUNS = 4


class SimWall:
    """The simulated wall clock: it stands still until the bench moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class _SimDatetime(datetime):
    """``datetime`` whose ``now()`` is the simulated wall clock (see `simulated_now`)."""

    wall: SimWall = SimWall(START)

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _SimDatetime:
        at = cls.wall()
        local = at.astimezone(tz) if tz is not None else at.astimezone(UTC).replace(tzinfo=None)
        return cls(
            local.year,
            local.month,
            local.day,
            local.hour,
            local.minute,
            local.second,
            local.microsecond,
            local.tzinfo,
        )


@contextlib.contextmanager
def simulated_now(wall: SimWall, modules: Sequence[ModuleType]) -> Iterator[None]:
    """While inside, ``datetime.now`` in `modules` reads `wall`."""
    saved = [(module, getattr(module, "datetime")) for module in modules]  # noqa: B009
    _SimDatetime.wall = wall
    try:
        for module in modules:
            setattr(module, "datetime", _SimDatetime)  # noqa: B010
        yield
    finally:
        for module, original in saved:
            setattr(module, "datetime", original)  # noqa: B010


@dataclass(frozen=True, slots=True)
class Params:
    """What to simulate."""

    start: datetime = START
    days: int = 30
    after: timedelta = AFTER_MONTH
    quota: int = QUOTA
    coins: int = COINS_PER_RUN
    schedules_min: tuple[float, ...] = SCHEDULES_MIN
    cli_runs: int = CLI_RUNS
    cli_daily_quota: int = CLI_DAILY_QUOTA


@dataclass(slots=True)
class RunRow:
    """One scheduled run of the simulation."""

    at: datetime
    requests: int
    ok: int
    deferred: int


@dataclass(slots=True)
class Schedule:
    """One schedule's simulation."""

    interval_min: float
    rows: list[RunRow] = field(default_factory=list)
    db_month: int = 0
    emulator_month: int = 0
    emulator_after: int = 0
    wall_s: float = 0.0
    deferral_reasons: list[str] = field(default_factory=list)


def _coins(n: int) -> list[Coin]:
    return [
        Coin(f"S{i:05d}", f"Synth {i:05d}", {SOURCE: f"synth-{i:05d}"}, ((SOURCE,),))
        for i in range(1, n + 1)
    ]


def _env(urls: dict[str, str], key: str) -> dict[str, str]:
    return {
        "COINGECKO_API_KEY": key,  # the demo plan: 10,000 a month unless set otherwise
        "COINGECKO_BASE_URL": urls[SOURCE],
        "COINGECKO_BATCH_SIZE": "1",
    }


def _emulator_requests(stats: dict[str, Any], key: str) -> int:
    return sum(keys.get(key, 0) for keys in stats["requests"].get(SOURCE, {}).values())


async def simulate(emu: EmulatorProcess, p: Params, interval_min: float, folder: Path) -> Schedule:
    """Every scheduled run of one schedule, on the simulated clock."""
    key = f"w8-every-{interval_min:g}-min"
    env = _env(emu.urls, key) | {"COINGECKO_QUOTA_PER_MONTH": str(p.quota)}
    settings = load_settings(env=env, env_file=None)
    sources = build_sources(settings, names=[SOURCE])
    limits = {
        name: replace(lim, min_interval_s=0.0, rate_per_window=None)
        for name, lim in effective_limits(settings, sources).items()
    }
    wall = SimWall(p.start)
    result = Schedule(interval_min)
    coins = _coins(p.coins)
    month_end = p.start + timedelta(days=p.days)
    step = timedelta(minutes=interval_min)
    started = time.monotonic()
    db = folder / f"{key}.db"
    async with await Store.from_url(f"sqlite+aiosqlite:///{db}") as store:
        engine = Engine(
            sources,
            max_concurrency=settings.max_collection_concurrency,
            limits=limits,
            batch_sizes={SOURCE: 1},
            retry=RetryPolicy(max_attempts=settings.max_retries + 1, rng=random.Random(7)),
            job_timeout_s=65.0,
            sink=store,
            adaptive=AdaptiveOptions({SOURCE: key_id(key)}),
            limit_store=store,
            wall=wall,
        )
        with simulated_now(wall, [engine_module, store_module]):
            while wall.at < month_end + p.after:
                if wall.at >= month_end and not result.emulator_month:
                    result.db_month = (await store.requests_since(p.start)).get(SOURCE, 0)
                    result.emulator_month = _emulator_requests(await emu.stats(), key)
                summary = await engine.run(coins, trigger="schedule", deadline_s=interval_min * 54)
                result.rows.append(
                    RunRow(wall.at, summary.requests, summary.coins_ok, summary.coins_deferred)
                )
                if summary.coins_deferred and len(result.deferral_reasons) < 3:
                    reasons = {e for r in summary.results for e in r.errors}
                    result.deferral_reasons.extend(sorted(reasons)[:1])
                wall.at += step
        await close_sources(sources.values())
    result.emulator_after = _emulator_requests(await emu.stats(), key) - result.emulator_month
    result.wall_s = round(time.monotonic() - started, 1)
    return result


def _gaps(times: Sequence[datetime]) -> float:
    """The longest gap between consecutive `times`, hours (0 with fewer than two)."""
    return max(
        ((b - a).total_seconds() / 3600.0 for a, b in itertools.pairwise(times)),
        default=0.0,
    )


def analyse(s: Schedule, p: Params) -> dict[str, Any]:
    """The schedule's W8 figures."""
    month_end = p.start + timedelta(days=p.days)
    month = [r for r in s.rows if r.at < month_end]
    after = [r for r in s.rows if r.at >= month_end]
    sent = sum(r.requests for r in month)
    days: dict[str, dict[str, Any]] = {}
    for r in month:
        day = days.setdefault(
            r.at.strftime("%m-%d"),
            {"requests": 0, "complete": 0, "partial": 0, "deferred": 0, "first_deferral": None},
        )
        day["requests"] += r.requests
        kind = "complete" if r.ok == p.coins else ("deferred" if r.ok == 0 else "partial")
        day[kind] += 1
        if r.deferred and day["first_deferral"] is None:
            day["first_deferral"] = r.at.strftime("%H:%M")
    per_day = [d["requests"] for d in days.values()]
    firsts = [d["first_deferral"] for d in days.values() if d["first_deferral"]]
    return {
        "interval_min": s.interval_min,
        "needs_per_month": round(p.coins * 1440 / s.interval_min * p.days),
        "quota": p.quota,
        "runs": len(month),
        "sent": sent,
        "sent_db": s.db_month,
        "sent_emulator": s.emulator_month,
        "over_quota": max(0, max(sent, s.db_month, s.emulator_month) - p.quota),
        "runs_complete": sum(1 for r in month if r.ok == p.coins),
        "runs_partial": sum(1 for r in month if 0 < r.ok < p.coins),
        "runs_deferred": sum(1 for r in month if r.ok == 0),
        "coins_deferred": sum(r.deferred for r in month),
        "requests_per_day": {"min": min(per_day, default=0), "max": max(per_day, default=0)},
        "days_with_deferrals": len(firsts),
        "first_deferral_of_day": {
            "earliest": min(firsts, default=None),
            "latest": max(firsts, default=None),
        },
        "max_gap_any_h": round(_gaps([r.at for r in month if r.ok > 0]), 2),
        "max_gap_complete_h": round(_gaps([r.at for r in month if r.ok == p.coins]), 2),
        "after_month": {
            "runs": len(after),
            "complete": sum(1 for r in after if r.ok == p.coins),
            "requests": sum(r.requests for r in after),
            "requests_emulator": s.emulator_after,
        },
        "model_day_share": spread_model(p, s.interval_min, per_hour=False),
        "model_hour_share": spread_model(p, s.interval_min, per_hour=True),
        "days": days,
        "deferral_reasons": s.deferral_reasons,
        "simulation_wall_s": s.wall_s,
    }


def spread_model(p: Params, interval_min: float, *, per_hour: bool) -> dict[str, Any]:
    """The schedule under the quota rule alone, no engine: a day may use
    ``ceil(left at its start / days left)`` (`engine/quota.py`); with `per_hour`, that share
    is also paced over the day: an hour may use ``ceil(left today / hours left today)``.

    Without `per_hour` it must give what the engine did (a check of the model); with it, what
    pacing the day's share would change. Returns requests sent and the longest gap (hours)
    between runs that sent anything.
    """
    step = timedelta(minutes=interval_min)
    month_end = p.start + timedelta(days=p.days)
    used_month = used_day = used_hour = 0
    day_share = hour_share = 0
    day = hour = None
    sent_at: list[datetime] = []
    at = p.start
    while at < month_end:
        if at.date() != day:
            day, used_day = at.date(), 0
            days_left = (month_end - at.replace(hour=0, minute=0)).days
            day_share = math.ceil((p.quota - used_month) / days_left)
        if (at.date(), at.hour) != hour:
            hour, used_hour = (at.date(), at.hour), 0
            hour_share = math.ceil((day_share - used_day) / (24 - at.hour))
        allowed = day_share - used_day
        if per_hour:
            allowed = min(allowed, hour_share - used_hour)
        sent = max(0, min(p.coins, allowed))
        used_month, used_day, used_hour = used_month + sent, used_day + sent, used_hour + sent
        if sent:
            sent_at.append(at)
        at += step
    return {"sent": used_month, "max_gap_any_h": round(_gaps(sent_at), 2)}


async def cli_part(emu: EmulatorProcess, p: Params, folder: Path) -> dict[str, Any]:
    """``coinharvest collect`` `p.cli_runs` times on one database, a small daily quota."""
    key = "w8-cli"
    db = folder / "w8-cli.db"
    coins_file = write_coins(folder / "w8-cli.toml", [(c.symbol, c.ids) for c in _coins(p.coins)])
    env = clean_env() | _env(emu.urls, key)
    env |= {
        "COINGECKO_QUOTA_PER_DAY": str(p.cli_daily_quota),
        "COINS_FILE": str(coins_file),
        "COINHARVEST_DB": str(db),
        "COLUMNS": "120",
    }
    runs = []
    for _ in range(p.cli_runs):
        before = _emulator_requests(await emu.stats(), key)
        done = await run_cli(env, folder, timeout_s=120)
        sent = _emulator_requests(await emu.stats(), key) - before
        runs.append(
            {"exit": done.returncode, "requests_emulator": sent, "wall_s": round(done.wall_s, 2)}
        )
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT requests, coins_ok, coins_deferred FROM runs ORDER BY started_at"
        ).fetchall()
        reason = conn.execute(
            "SELECT error FROM job_events WHERE status = 'deferred' LIMIT 1"
        ).fetchone()
    for run, (requests, ok, deferred) in zip(runs, rows, strict=True):
        run |= {"requests_db": requests, "coins_ok": ok, "coins_deferred": deferred}
    return {
        "daily_quota": p.cli_daily_quota,
        "coins_per_run": p.coins,
        "runs": runs,
        "sent_total": sum(r["requests_emulator"] for r in runs),
        "deferral_reason": reason[0] if reason else None,
    }


def tables(result: dict[str, Any]) -> str:
    head = [
        "schedule",
        "needs/month",
        "sent in month (runs / db / emulator)",
        "over quota",
        "runs complete / partial / deferred",
        "requests a day (min-max)",
        "deferrals start (earliest-latest)",
        "longest gap, any coin / all coins (h)",
        "July 1, first 2 h",
    ]
    rows = []
    for s in result["schedules"]:
        after = s["after_month"]
        first = s["first_deferral_of_day"]
        rows.append(
            [
                f"every {s['interval_min']:g} min",
                f"{s['needs_per_month']:,}",
                f"{s['sent']:,} / {s['sent_db']:,} / {s['sent_emulator']:,} of {s['quota']:,}",
                s["over_quota"],
                f"{s['runs_complete']:,} / {s['runs_partial']} / {s['runs_deferred']:,}",
                f"{s['requests_per_day']['min']}-{s['requests_per_day']['max']}",
                "none" if first["earliest"] is None else f"{first['earliest']}-{first['latest']}",
                f"{s['max_gap_any_h']:g} / {s['max_gap_complete_h']:g}",
                f"{after['complete']}/{after['runs']} runs complete, {after['requests']} requests",
            ]
        )
    text = markdown_table(head, rows)
    for s in result["schedules"]:
        day, hour = s["model_day_share"], s["model_hour_share"]
        text += (
            f"\n\nModel of the quota rule alone, every {s['interval_min']:g} min: the day's share"
            f" (as the engine) sends {day['sent']:,}, longest gap {day['max_gap_any_h']:g} h;"
            f" the day's share paced per hour would send {hour['sent']:,}, longest gap"
            f" {hour['max_gap_any_h']:g} h."
        )
    cli = result.get("cli")
    if cli:
        head2 = ["collect #", "requests (emulator / db)", "coins ok / deferred", "exit"]
        rows2 = [
            [
                i + 1,
                f"{r['requests_emulator']} / {r['requests_db']}",
                f"{r['coins_ok']} / {r['coins_deferred']}",
                r["exit"],
            ]
            for i, r in enumerate(cli["runs"])
        ]
        text += "\n\n" + markdown_table(head2, rows2)
    return text


async def run(p: Params, *, cli: bool = True) -> dict[str, Any]:
    """Each schedule on its own database, then the CLI part, against one emulator."""
    config = {"universe": max(p.coins, 20), "upstreams": {SOURCE: {}}}
    result: dict[str, Any] = {
        "benchmark": "W8 quota",
        "quota_per_month": p.quota,
        "coins_per_run": p.coins,
        "month": f"{p.start:%Y-%m-%d} + {p.days} days",
        "schedules": [],
    }
    async with EmulatorProcess(config) as emu:
        with tempfile.TemporaryDirectory() as tmp:
            for interval in p.schedules_min:
                schedule = await simulate(emu, p, interval, Path(tmp))
                result["schedules"].append(analyse(schedule, p))
                print(f"# every {interval:g} min: done", file=sys.stderr, flush=True)
            if cli:
                result["cli"] = await cli_part(emu, p, Path(tmp))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-cli", action="store_true", help="the simulated month only")
    parser.add_argument("--json", type=Path, help="save the result here too")
    args = parser.parse_args(argv)
    p = Params()
    result = asyncio.run(run(p, cli=not args.no_cli))
    print(
        f"W8 quota: {p.quota:,} requests a month, {p.coins} requests a run, June 2031 "
        "simulated (wall clock moved by the bench, counts from SQLite).\n"
    )
    print(tables(result))
    print()
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
