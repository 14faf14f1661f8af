"""Quotas per UTC day and month, and what the engine keeps between runs (frozen clocks)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from enginekit import coin
from vclock import run_virtual

from coinharvest.engine import Engine
from coinharvest.engine.quota import QuotaBudget, plan_usage
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import LearnedLimit, SourceLimits
from coinharvest.sources.simulated import SimulatedSource


class FrozenWall:
    """A wall clock that moves only when told."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


# A date far from today, on purpose: nothing here may depend on the real calendar.
JUNE_30 = datetime(2031, 6, 30, 22, 0, tzinfo=UTC)


def test_a_daily_quota_refuses_the_next_request_until_midnight() -> None:
    wall = FrozenWall(JUNE_30)
    quota = QuotaBudget("nearblocks", per_day=3, per_month=None, wall=wall)
    for _ in range(3):
        assert quota.refusal() is None
        quota.spend()
    refusal = quota.refusal()
    assert refusal is not None and "daily quota (3 requests)" in refusal
    assert "2031-07-01 00:00 UTC" in refusal
    wall.at += timedelta(hours=2)  # a new day
    assert quota.refusal() is None and quota.used_day == 0


def test_a_month_is_spread_over_its_days_and_resets_with_the_month() -> None:
    wall = FrozenWall(datetime(2031, 6, 21, 8, tzinfo=UTC))  # 10 days left in June
    quota = QuotaBudget("coingecko", per_day=None, per_month=1000, wall=wall)
    quota.seed(used_day=0, used_month=900)  # 100 left for 10 days: 10 a day
    assert quota.allowance_today() == 10
    for _ in range(10):
        quota.spend()
    refusal = quota.refusal()
    assert refusal is not None and "share of its monthly quota for today (10 of 1,000" in refusal
    wall.at = datetime(2031, 7, 1, 0, 1, tzinfo=UTC)
    assert quota.refusal() is None and quota.used_month == 0


def test_a_spent_month_says_when_it_resets() -> None:
    wall = FrozenWall(JUNE_30)
    quota = QuotaBudget("coingecko", per_day=None, per_month=100, wall=wall)
    quota.seed(used_day=5, used_month=100)
    assert quota.refusal() == (
        "coingecko's monthly quota (100 requests) is spent; it resets 2031-07-01 00:00 UTC"
    )


def test_the_plan_of_a_schedule_against_its_quotas() -> None:
    plan = plan_usage("coingecko", 4, 60.0, None, 10_000)
    assert plan.describe() == "4 coingecko requests × 24 runs × 30 days = 2,880 of 10,000/month"
    assert not plan.exceeds
    assert plan_usage("coingecko", 4, 10.0, None, 10_000).exceeds  # 17,280 a month


def test_the_engine_never_sends_past_a_quota_and_defers_the_rest() -> None:
    source = SimulatedSource("quota", limits=SourceLimits(max_concurrency=2, quota_per_day=3))
    engine = Engine(
        {"quota": source}, retry=RetryPolicy(rng=random.Random(0)), wall=FrozenWall(JUNE_30)
    )
    summary = run_virtual(engine.run([coin(f"Q{i}", "quota") for i in range(5)]))
    assert len(source.calls) == 3
    assert (summary.coins_ok, summary.coins_deferred) == (3, 2)
    deferred = [r for r in summary.results if r.errors]
    assert all("daily quota (3 requests) is spent" in " ".join(r.errors) for r in deferred)


class MemoryLimitStore:
    """A `LimitStore` in memory: what was saved, and requests per source since a time."""

    def __init__(self, sent: Sequence[tuple[str, datetime]] = ()) -> None:
        self.saved: list[LearnedLimit] = []
        self.sent = list(sent)

    async def load_learned_limits(self) -> list[LearnedLimit]:
        return list(self.saved)

    async def save_learned_limits(self, limits: Sequence[LearnedLimit]) -> None:
        self.saved = list(limits)

    async def requests_since(self, since: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        for source, at in self.sent:
            if at >= since:
                counts[source] = counts.get(source, 0) + 1
        return counts


def test_quota_counts_come_from_the_store_before_each_run() -> None:
    day = JUNE_30.replace(hour=0)
    store = MemoryLimitStore([("quota", day + timedelta(hours=1))] * 2)
    source = SimulatedSource("quota", limits=SourceLimits(max_concurrency=2, quota_per_day=3))
    engine = Engine({"quota": source}, limit_store=store, wall=FrozenWall(JUNE_30))
    summary = run_virtual(engine.run([coin(f"Q{i}", "quota") for i in range(3)]))
    assert len(source.calls) == 1 and summary.coins_deferred == 2


def test_learned_limits_are_saved_after_a_run_and_restored_by_the_next_engine() -> None:
    limits = SourceLimits(max_concurrency=4, min_interval_s=2.0, rate_per_window=30)
    store = MemoryLimitStore()
    learned = LearnedLimit("sim", "", 2.0, 9.0, 11.0, JUNE_30 - timedelta(minutes=5))
    store.saved = [learned, LearnedLimit("sim", "other-key", 1.0, 1.0, None, JUNE_30)]
    source = SimulatedSource("sim", limits=limits)
    engine = Engine({"sim": source}, adaptive=True, limit_store=store, wall=FrozenWall(JUNE_30))
    run_virtual(engine.run([coin("A", "sim")]))
    lim = engine.limiters["sim"]
    assert lim.cap == 2 and abs(lim.spacing_s - 60.0 / 9.0) < 1e-9  # the key "" one
    (saved,) = store.saved
    assert (saved.source, saved.key_id, saved.ceiling_per_minute) == ("sim", "", 11.0)
    assert saved.updated_at == JUNE_30


def test_adaptive_off_keeps_the_configured_limits_and_saves_nothing() -> None:
    store = MemoryLimitStore()
    store.saved = [LearnedLimit("sim", "", 1.0, 2.0, None, JUNE_30)]
    limits = SourceLimits(max_concurrency=4, min_interval_s=2.0, rate_per_window=30)
    engine = Engine({"sim": SimulatedSource("sim", limits=limits)}, limit_store=store)
    run_virtual(engine.run([coin("A", "sim")]))
    assert (engine.limiters["sim"].cap, engine.limiters["sim"].spacing_s) == (4, 2.0)
    assert store.saved[0].concurrency == 1.0  # untouched
