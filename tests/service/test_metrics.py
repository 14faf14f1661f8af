"""Prometheus metrics: known series exist at 0, and the counters match the runs' summaries."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from coinharvest.engine import Engine
from coinharvest.models import CoinResult, CoinStatus, RunStatus
from coinharvest.service.metrics import Metrics
from coinharvest.service.scheduler import Scheduler
from coinharvest.sources.simulated import SimulatedSource

from .conftest import Filled, samples, total


def test_known_series_start_at_zero() -> None:
    registry = CollectorRegistry()
    Metrics(["coingecko", "3xpl"], ["BTC", "ETH"], registry=registry)
    get = registry.get_sample_value
    for status in ("completed", "partial", "failed", "interrupted"):
        assert get("coinharvest_runs_total", {"status": status}) == 0
    for outcome in ("200", "429", "503", "timeout", "error"):
        assert get("coinharvest_requests_total", {"source": "3xpl", "status": outcome}) == 0
    assert get("coinharvest_rate_limited_total", {"source": "coingecko"}) == 0
    assert get("coinharvest_retries_total", {"source": "coingecko"}) == 0
    assert get("coinharvest_jobs_in_flight", {"source": "coingecko"}) == 0
    assert get("coinharvest_limiter_wait_seconds_count", {"source": "3xpl"}) == 0
    assert get("coinharvest_last_success_timestamp_seconds", {"symbol": "BTC"}) == 0
    assert get("coinharvest_skipped_ticks_total") == 0
    assert get("coinharvest_run_duration_seconds_count") == 0


def test_hooks_update_the_series() -> None:
    m = Metrics(["nano"], ["XNO"], clock=lambda: 1234.5)
    get = m.registry.get_sample_value
    m.job_started("nano", 0.25)
    assert get("coinharvest_jobs_in_flight", {"source": "nano"}) == 1
    m.job_finished("nano", "429", 0.1)
    assert get("coinharvest_jobs_in_flight", {"source": "nano"}) == 0
    assert get("coinharvest_rate_limited_total", {"source": "nano"}) == 1
    assert get("coinharvest_requests_total", {"source": "nano", "status": "429"}) == 1
    assert get("coinharvest_limiter_wait_seconds_sum", {"source": "nano"}) == 0.25
    m.coin_completed(CoinResult("XNO", "Nano", CoinStatus.OK, datetime.now(UTC), 0.4, 2, ("nano",)))
    assert get("coinharvest_last_success_timestamp_seconds", {"symbol": "XNO"}) == 1234.5
    assert get("coinharvest_coin_collection_duration_seconds_count", {"source": "nano"}) == 1
    m.tick_skipped()
    assert get("coinharvest_skipped_ticks_total") == 1


def test_a_failed_coin_does_not_move_its_last_success() -> None:
    m = Metrics([], ["BTC"], clock=lambda: 99.0)
    m.coin_completed(CoinResult("BTC", "Bitcoin", CoinStatus.FAILED, None, 0.1, 1, ()))
    assert (
        m.registry.get_sample_value("coinharvest_last_success_timestamp_seconds", {"symbol": "BTC"})
        == 0
    )
    assert m.registry.get_sample_value("coinharvest_coins_total", {"status": "failed"}) == 1


def test_counters_match_the_runs_summaries(filled: Filled) -> None:
    parsed = samples(filled.exposition)  # the text format, through prometheus_client's parser
    runs = filled.summaries
    assert total(parsed, "coinharvest_requests_total") == sum(s.requests for s in runs)
    assert total(parsed, "coinharvest_rate_limited_total") == sum(s.rate_limited for s in runs)
    assert total(parsed, "coinharvest_retries_total") == sum(s.retries for s in runs)
    assert sum(s.retries for s in runs) > 0, "the emulator's 503s should have caused retries"
    for status in RunStatus:
        if status is not RunStatus.RUNNING:
            expected = sum(1 for s in runs if s.status is status)
            assert total(parsed, "coinharvest_runs_total", status=status.value) == expected
    assert total(parsed, "coinharvest_coins_total", status="ok") == sum(s.coins_ok for s in runs)
    assert total(parsed, "coinharvest_run_duration_seconds_count") == len(runs)
    assert total(parsed, "coinharvest_run_duration_seconds_sum") == sum(s.duration_s for s in runs)
    assert total(parsed, "coinharvest_jobs_in_flight") == 0
    # Per source, requests = job attempts that started in the timelines.
    for source in ("coingecko", "3xpl"):
        started = sum(
            1 for s in runs for j in s.jobs if j.source == source and j.started_s is not None
        )
        assert total(parsed, "coinharvest_requests_total", source=source) == started
        assert total(parsed, "coinharvest_limiter_wait_seconds_count", source=source) == started


async def test_scheduler_ticks_and_running_are_exposed() -> None:
    source = SimulatedSource("sim", default_latency=0.3)
    engine = Engine({"sim": source})
    m = Metrics(["sim"])
    from coinharvest.models import Coin

    coin = Coin("AAA", "A", {"sim": "a"}, (("sim",),))
    sched = Scheduler(engine, lambda: [coin], interval_s=60, on_skip=m.tick_skipped)
    m.watch(sched)
    get = m.registry.get_sample_value
    assert get("coinharvest_scheduler_ticks_total") == 0
    assert get("coinharvest_scheduler_running") == 0
    task = sched.trigger("api")
    assert get("coinharvest_scheduler_running") == 1
    await task
    assert get("coinharvest_scheduler_running") == 0
