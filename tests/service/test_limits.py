"""Learned limits and quotas as the service shows them: the report without an engine, the
quota plans, resetting a live engine, and the Prometheus series read at scrape time.

Times are relative to now (a learned limit ten minutes old, requests sent a second ago), so
no test depends on today's date.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from coinharvest.engine import Engine
from coinharvest.engine.adaptive import AdaptiveOptions, LimitView, key_id
from coinharvest.engine.quota import QuotaBudget, day_start
from coinharvest.models import (
    Coin,
    JobRecord,
    JobStatus,
    LearnedLimit,
    RunStatus,
    RunSummary,
    SourceLimits,
)
from coinharvest.service.limits import (
    LimitsDesk,
    ResetRefused,
    build_report,
    quota_plans,
    read_report,
    reset_controllers,
)
from coinharvest.service.metrics import Metrics
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.storage import Store

from .conftest import samples

KEY = key_id("the-key")
#: coingecko: 4 in flight, 30 a minute, 10,000 a month; nano: 2 in flight, no rate limit;
#: nearblocks: 333 a day.
LIMITS = {
    "coingecko": SourceLimits(4, 0.0, 30, quota_per_month=10_000),
    "nano": SourceLimits(2),
    "nearblocks": SourceLimits(1, 0.0, 6, quota_per_day=333),
}
KEYS = {"coingecko": KEY, "nano": "", "nearblocks": ""}
NOW = datetime.now(UTC)


def learned(source: str, key: str = "", **values: float | None) -> LearnedLimit:
    """A learned limit saved ten minutes ago."""
    fields = {"concurrency": 1.0, "rate_per_minute": 0.0, "ceiling_per_minute": None} | values
    return LearnedLimit(source, key, updated_at=NOW - timedelta(minutes=10), **fields)  # type: ignore[arg-type]


def by_source(views: list[LimitView]) -> dict[str, LimitView]:
    return {v.source: v for v in views}


def allowance(per_day: int | None, per_month: int | None, used_day: int, used_month: int) -> int:
    """Today's allowance as the engine computes it (a month's share depends on the date)."""
    quota = QuotaBudget("x", per_day, per_month, lambda: NOW)
    quota.seed(used_day, used_month)
    allowed = quota.allowance_today()
    assert allowed is not None
    return allowed


# --------------------------------------------------------------------------- the report


def test_the_report_restores_learned_limits_of_the_current_key_only() -> None:
    rows = [
        learned("coingecko", KEY, concurrency=2.6, rate_per_minute=10.0, ceiling_per_minute=12.0),
        learned("coingecko", "another-key", concurrency=1.0, rate_per_minute=2.0),
        learned("nano", concurrency=9.0),  # above the ceiling: clamped to it
    ]
    used = ({"coingecko": 5, "nearblocks": 7}, {"coingecko": 40, "nearblocks": 7})
    report = build_report(LIMITS, KEYS, adaptive=True, learned=rows, used=used, now=NOW)
    views = by_source(report.views)
    cg = views["coingecko"]
    assert (cg.concurrency, cg.max_concurrency) == (2, 4)
    assert cg.rate_per_minute == pytest.approx(10.0) and cg.max_rate_per_minute == 30.0
    assert cg.ceiling_per_minute == 12.0 and cg.adaptive
    assert (cg.quota_used_day, cg.quota_used_month, cg.quota_per_month) == (5, 40, 10_000)
    assert cg.quota_today == allowance(None, 10_000, 5, 40)
    assert (views["nano"].concurrency, views["nano"].rate_per_minute) == (2, math.inf)
    nb = views["nearblocks"]
    assert (nb.quota_used_day, nb.quota_today, nb.quota_per_month) == (7, 333, None)
    assert set(report.learned) == {"coingecko", "nano"}  # not another key's
    assert report.learned["coingecko"].key_id == KEY
    assert report.stored == 3 and report.counted


def test_the_report_without_adaptive_limits_or_counts() -> None:
    rows = [learned("coingecko", KEY, concurrency=2.0, rate_per_minute=10.0)]
    report = build_report(LIMITS, KEYS, adaptive=False, learned=rows, now=NOW)
    cg = by_source(report.views)["coingecko"]
    assert (cg.concurrency, cg.rate_per_minute, cg.ceiling_per_minute) == (4, 30.0, None)
    assert not cg.adaptive
    assert (cg.quota_used_day, cg.quota_used_month) == (None, None)  # unknown, not 0
    assert cg.quota_per_month == 10_000
    assert not report.counted


async def record_requests(store: Store, at: datetime, per_source: dict[str, int]) -> None:
    """A finished run started at `at` whose attempts all started (requests sent)."""
    jobs = [
        JobRecord(i, source, ("A",), 1, 0.0, 0.01 * i, 0.01 * i + 0.1, JobStatus.OK)
        for i, source in enumerate(s for s, n in per_source.items() for _ in range(n))
    ]
    run_id = f"run-{at.timestamp():.6f}"
    await store.run_started(run_id, "manual", at, [])
    await store.jobs_recorded(run_id, jobs)
    summary = RunSummary(
        run_id, "manual", RunStatus.COMPLETED, at, 1.0, 0, 0, 0, 0,
        requests=len(jobs), rate_limited=0, retries=0, max_in_flight=1, jobs=jobs,
    )  # fmt: skip
    await store.run_finished(summary)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'limits.db'}") as opened:
        yield opened


async def test_read_report_reads_learned_limits_and_todays_requests(store: Store) -> None:
    now = datetime.now(UTC)
    today = max(day_start(now), now - timedelta(seconds=1))  # today, whatever the hour
    await record_requests(store, today, {"coingecko": 3, "nearblocks": 2})
    await store.save_learned_limits([learned("coingecko", KEY, concurrency=3.0)])
    report = await read_report(store.engine, LIMITS, KEYS, adaptive=True, now=now)
    views = by_source(report.views)
    assert (views["coingecko"].quota_used_day, views["coingecko"].quota_used_month) == (3, 3)
    assert views["nearblocks"].quota_used_day == 2
    assert views["nano"].quota_used_day is None  # no quota
    assert views["coingecko"].concurrency == 3 and set(report.learned) == {"coingecko"}


# --------------------------------------------------------------------------- quota plans


def test_quota_plans_cover_the_sources_with_a_quota() -> None:
    coins = [
        Coin(f"C{i}", f"Coin {i}", {"coingecko": f"c{i}", "nearblocks": f"n{i}"},
             (("coingecko",), ("nearblocks",)))
        for i in range(3)
    ]  # fmt: skip
    sizes = {"coingecko": 250, "nano": 1, "nearblocks": 1}
    hourly = {p.source: p for p in quota_plans(LIMITS, sizes, coins, 60)}
    assert set(hourly) == {"coingecko", "nearblocks"}
    assert hourly["coingecko"].describe() == (
        "1 coingecko requests × 24 runs × 30 days = 720 of 10,000/month"
    )
    assert hourly["nearblocks"].describe() == "3 nearblocks requests × 24 runs = 72 of 333/day"
    assert not any(p.exceeds for p in hourly.values())
    every_minute = {p.source: p for p in quota_plans(LIMITS, sizes, coins, 1)}
    assert every_minute["nearblocks"].exceeds and every_minute["coingecko"].exceeds


# --------------------------------------------------------------------------- a live engine


def live_engine(*, adaptive: bool = True) -> Engine:
    sources = {name: SimulatedSource(name, default_latency=0.01) for name in LIMITS}
    options = AdaptiveOptions(key_ids=KEYS) if adaptive else False
    return Engine(sources, limits=LIMITS, adaptive=options)


async def test_reset_controllers_starts_the_engine_again_from_the_ceilings() -> None:
    engine = live_engine()
    now = engine.clock()
    row = learned("coingecko", KEY, concurrency=2.0, rate_per_minute=10.0, ceiling_per_minute=12)
    engine.adaptations["coingecko"].restore(row, 600.0, now)
    engine.adaptations["nano"].restore(learned("nano", concurrency=1.0), 600.0, now)
    cg = by_source(engine.limit_views())["coingecko"]
    assert (cg.concurrency, cg.ceiling_per_minute) == (2, 12.0)
    assert cg.rate_per_minute == pytest.approx(10.0)

    assert reset_controllers(engine, "coingecko") == ["coingecko"]
    views = by_source(engine.limit_views())
    assert (views["coingecko"].concurrency, views["coingecko"].rate_per_minute) == (4, 30.0)
    assert views["coingecko"].ceiling_per_minute is None
    assert views["nano"].concurrency == 1  # another source is left alone
    assert engine.memory._adaptations["coingecko"] is engine.adaptations["coingecko"]
    assert engine.adaptations["coingecko"].key_id == KEY
    assert reset_controllers(engine) == ["coingecko", "nano", "nearblocks"]
    assert by_source(engine.limit_views())["nano"].concurrency == 2
    assert reset_controllers(live_engine(adaptive=False)) == []


async def test_the_desk_resets_database_and_engine_and_refuses_while_a_run_goes(
    store: Store,
) -> None:
    engine = live_engine()
    await store.save_learned_limits(
        [learned("coingecko", KEY, concurrency=2.0), learned("nano", concurrency=1.0)]
    )
    engine.adaptations["coingecko"].restore(learned("coingecko", KEY, concurrency=2.0), 1, 0)
    desk = LimitsDesk(store.engine, LIMITS, KEYS, adaptive=True, engine=engine, resetter=store)
    with pytest.raises(KeyError):
        await desk.reset("nope")
    outcome = await desk.reset("coingecko")
    assert (outcome.forgotten, outcome.engine_reset) == (1, True)
    assert "starts again from the configured limits" in outcome.message
    assert by_source(await desk.views())["coingecko"].concurrency == 4
    assert [r.source for r in await store.load_learned_limits()] == ["nano"]

    coin = Coin("AAA", "Coin A", {"nano": "a"}, (("nano",),))
    sim = engine.sources["nano"]
    assert isinstance(sim, SimulatedSource)
    sim.default_latency = 0.5
    running = asyncio.ensure_future(engine.run([coin]))
    await wait_until_running(engine)
    with pytest.raises(ResetRefused, match="run is going"):
        await desk.reset(None)
    await running
    outcome = await desk.reset(None)
    assert outcome.forgotten == 1 and outcome.source is None


async def wait_until_running(engine: Engine) -> None:
    for _ in range(200):
        if engine.running:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the run did not start")


async def test_a_desk_without_engine_reads_the_database_and_says_a_service_keeps_its_own(
    store: Store,
) -> None:
    await store.save_learned_limits([learned("coingecko", KEY, concurrency=3.0)])
    desk = LimitsDesk(store.engine, LIMITS, KEYS, adaptive=True, resetter=store)
    assert by_source(await desk.views())["coingecko"].concurrency == 3
    outcome = await desk.reset("coingecko")
    assert outcome.forgotten == 1 and not outcome.engine_reset
    assert "keeps what it learned in memory" in outcome.message
    assert by_source(await desk.views())["coingecko"].concurrency == 4
    with pytest.raises(ResetRefused):
        await LimitsDesk(store.engine, LIMITS, KEYS, adaptive=True).reset(None)


# --------------------------------------------------------------------------- /metrics


def test_limit_series_are_read_from_the_engine_at_scrape_time() -> None:
    engine = live_engine()
    engine.limiters["coingecko"].quota.seed(5, 40)  # type: ignore[union-attr]
    metrics = Metrics(list(LIMITS))
    metrics.watch_limits(engine.limit_views)
    first = samples(metrics.exposition().decode())

    def value(parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
              **labels: str) -> float | None:  # fmt: skip
        return parsed.get((f"coinharvest_source_{name}", frozenset(labels.items())))

    assert value(first, "concurrency_limit", source="coingecko") == 4
    assert value(first, "concurrency_ceiling", source="nano") == 2
    assert value(first, "rate_ceiling_per_minute", source="coingecko") == 30
    assert value(first, "rate_limit_per_minute", source="nano") is None  # unlimited: no series
    assert value(first, "rate_ceiling_per_minute", source="nano") is None
    assert value(first, "rate_refused_per_minute", source="coingecko") is None  # never refused
    assert value(first, "quota_used", source="coingecko", period="day") == 5
    assert value(first, "quota_used", source="coingecko", period="month") == 40
    assert value(first, "quota_limit", source="coingecko", period="month") == 10_000
    assert value(first, "quota_limit", source="coingecko", period="day") == allowance(
        None, 10_000, 5, 40
    )
    assert value(first, "quota_limit", source="nearblocks", period="day") == 333
    assert value(first, "quota_limit", source="nearblocks", period="month") is None
    assert value(first, "quota_used", source="nano", period="day") is None

    row = learned("coingecko", KEY, concurrency=2.0, rate_per_minute=10.0, ceiling_per_minute=12)
    engine.adaptations["coingecko"].restore(row, 600.0, 0.0)
    engine.limiters["coingecko"].quota.spend()  # type: ignore[union-attr]
    later = samples(metrics.exposition().decode())
    assert value(later, "concurrency_limit", source="coingecko") == 2
    assert value(later, "rate_limit_per_minute", source="coingecko") == pytest.approx(10.0)
    assert value(later, "rate_refused_per_minute", source="coingecko") == 12
    assert value(later, "quota_used", source="coingecko", period="day") == 6
