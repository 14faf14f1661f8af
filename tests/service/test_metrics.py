"""Prometheus metrics: known series exist at 0, the counters match the runs' summaries, the
process/build series are there and removed coins lose their series."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, ProcessCollector
from sqlalchemy.ext.asyncio import AsyncEngine

import coinharvest
from coinharvest.coins import load_coins
from coinharvest.engine import Engine
from coinharvest.models import Coin, CoinResult, CoinStatus, RunStatus, RunSummary
from coinharvest.service.metrics import Metrics, request_labels
from coinharvest.service.scheduler import Scheduler
from coinharvest.sources.simulated import SimulatedSource

from .conftest import Filled, samples, total


def test_known_series_start_at_zero() -> None:
    registry = CollectorRegistry()
    Metrics(["coingecko", "3xpl"], ["BTC", "ETH"], registry=registry)
    get = registry.get_sample_value
    for status in ("completed", "partial", "failed", "interrupted"):
        assert get("coinharvest_runs_total", {"status": status}) == 0
    for code, outcome in (("200", "ok"), ("429", "rate_limited"), ("503", "error")):
        labels = {"source": "3xpl", "code": code, "outcome": outcome}
        assert get("coinharvest_requests_total", labels) == 0
    for outcome in ("timeout", "error"):
        labels = {"source": "3xpl", "code": "none", "outcome": outcome}
        assert get("coinharvest_requests_total", labels) == 0
    assert get("coinharvest_retries_total", {"source": "coingecko"}) == 0
    assert get("coinharvest_jobs_in_flight", {"source": "coingecko"}) == 0
    assert get("coinharvest_limiter_wait_seconds_count", {"source": "3xpl"}) == 0
    assert get("coinharvest_coin_last_success_timestamp_seconds", {"symbol": "BTC"}) == 0
    assert get("coinharvest_last_successful_run_timestamp_seconds") == 0
    assert get("coinharvest_skipped_ticks_total") == 0
    assert get("coinharvest_run_duration_seconds_count") == 0
    assert get("coinharvest_rate_limited_total", {"source": "coingecko"}) is None  # dropped


def test_hooks_update_the_series() -> None:
    m = Metrics(["nano"], ["XNO"], clock=lambda: 1234.5)
    get = m.registry.get_sample_value
    m.job_started("nano", 0.25)
    assert get("coinharvest_jobs_in_flight", {"source": "nano"}) == 1
    m.job_finished("nano", "429", 0.1)
    assert get("coinharvest_jobs_in_flight", {"source": "nano"}) == 0
    rate_limited = {"source": "nano", "code": "429", "outcome": "rate_limited"}
    assert get("coinharvest_requests_total", rate_limited) == 1
    assert get("coinharvest_limiter_wait_seconds_sum", {"source": "nano"}) == 0.25
    m.coin_completed(CoinResult("XNO", "Nano", CoinStatus.OK, datetime.now(UTC), 0.4, 2, ("nano",)))
    assert get("coinharvest_coin_last_success_timestamp_seconds", {"symbol": "XNO"}) == 1234.5
    assert get("coinharvest_coin_collection_duration_seconds_count", {"source": "nano"}) == 1
    m.tick_skipped()
    assert get("coinharvest_skipped_ticks_total") == 1


def test_a_failed_coin_does_not_move_its_last_success() -> None:
    m = Metrics([], ["BTC"], clock=lambda: 99.0)
    m.coin_completed(CoinResult("BTC", "Bitcoin", CoinStatus.FAILED, None, 0.1, 1, ()))
    assert (
        m.registry.get_sample_value(
            "coinharvest_coin_last_success_timestamp_seconds", {"symbol": "BTC"}
        )
        == 0
    )
    assert m.registry.get_sample_value("coinharvest_coins_total", {"status": "failed"}) == 1


def test_counters_match_the_runs_summaries(filled: Filled) -> None:
    parsed = samples(filled.exposition)  # the text format, through prometheus_client's parser
    runs = filled.summaries
    assert total(parsed, "coinharvest_requests_total") == sum(s.requests for s in runs)
    rate_limited = total(parsed, "coinharvest_requests_total", outcome="rate_limited")
    assert rate_limited == sum(s.rate_limited for s in runs)
    assert total(parsed, "coinharvest_requests_total", code="429") == rate_limited
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


async def test_scheduler_ticks_interval_and_run_in_progress_are_exposed() -> None:
    source = SimulatedSource("sim", default_latency=0.3)
    engine = Engine({"sim": source})
    m = Metrics(["sim"])
    coin = Coin("AAA", "A", {"sim": "a"}, (("sim",),))
    sched = Scheduler(engine, lambda: [coin], interval_s=60, on_skip=m.tick_skipped)
    m.watch(sched)
    get = m.registry.get_sample_value
    assert get("coinharvest_scheduler_ticks_total") == 0
    assert get("coinharvest_run_in_progress") == 0
    assert get("coinharvest_collection_interval_seconds") == 60
    task = sched.trigger("api")
    assert get("coinharvest_run_in_progress") == 1
    await task
    assert get("coinharvest_run_in_progress") == 0
    assert get("coinharvest_scheduler_running") is None  # renamed to run_in_progress


def test_request_labels_pair_each_code_with_one_outcome() -> None:
    assert request_labels("200") == ("200", "ok")
    assert request_labels("429") == ("429", "rate_limited")
    assert request_labels("503") == ("503", "error")
    assert request_labels("404") == ("404", "error")
    assert request_labels("timeout") == ("none", "timeout")
    assert request_labels("error") == ("none", "error")
    assert request_labels("cancelled") == ("none", "cancelled")
    assert request_labels("something new") == ("none", "error")


def test_build_info_and_process_series_are_exposed() -> None:
    m = Metrics(["nano"])
    get = m.registry.get_sample_value
    assert get("coinharvest_build_info", {"version": coinharvest.__version__}) == 1
    assert get("python_info", _python_labels()) == 1
    if Path("/proc/self/stat").exists():  # ProcessCollector reads /proc (Linux)
        assert (get("process_resident_memory_bytes") or 0) > 0
        assert (get("process_start_time_seconds") or 0) > 0


def test_metrics_on_the_global_registry_keep_its_process_collectors() -> None:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # as the process-global registry has
    m = Metrics(registry=registry)  # no "Duplicated timeseries"
    assert m.registry.get_sample_value("python_info", _python_labels()) == 1


def _python_labels() -> dict[str, str]:
    info = platform.python_version_tuple()
    return {
        "implementation": platform.python_implementation(),
        "major": info[0],
        "minor": info[1],
        "patchlevel": info[2],
        "version": platform.python_version(),
    }


def test_a_successful_run_stamps_the_last_successful_run() -> None:
    now = [100.0]
    m = Metrics(clock=lambda: now[0])
    get = m.registry.get_sample_value
    m.run_finished(_summary(RunStatus.FAILED))
    assert get("coinharvest_last_successful_run_timestamp_seconds") == 0
    m.run_finished(_summary(RunStatus.PARTIAL))
    assert get("coinharvest_last_successful_run_timestamp_seconds") == 100
    now[0] = 200.0
    m.run_finished(_summary(RunStatus.COMPLETED))
    assert get("coinharvest_last_successful_run_timestamp_seconds") == 200


def _summary(status: RunStatus) -> RunSummary:
    return RunSummary("r", "schedule", status, datetime.now(UTC), 0.5, 1, 1, 0, 0, 1, 0, 0, 1)


def test_removed_coins_lose_their_series() -> None:
    m = Metrics([], ["BTC", "ETH"], clock=lambda: 5.0)
    m.coin_completed(CoinResult("ETH", "Ether", CoinStatus.OK, datetime.now(UTC), 0.1, 1, ()))
    name = "coinharvest_coin_last_success_timestamp_seconds"
    configured = [_coin("BTC"), _coin("XNO")]
    read = m.follow_coins(lambda: configured)
    assert [c.symbol for c in read()] == ["BTC", "XNO"]
    parsed = samples(m.exposition().decode())
    symbols = {dict(labels)["symbol"] for (n, labels) in parsed if n == name}
    assert symbols == {"BTC", "XNO"}, "ETH was removed from the coins file"
    # Added after start: stamped "now" (not stale before it had its chance).
    assert parsed[(name, frozenset({("symbol", "XNO")}))] == 5.0
    configured.append(_coin("ETH"))  # back again: starts over, at "now"
    read()
    assert m.registry.get_sample_value(name, {"symbol": "ETH"}) == 5.0


def _coin(symbol: str) -> Coin:
    return Coin(symbol, symbol.title(), {"sim": symbol.lower()}, (("sim",),))


async def test_the_scheduler_reads_the_coins_through_the_metrics() -> None:
    source = SimulatedSource("sim", default_latency=0.01)
    m = Metrics(["sim"], ["AAA", "OLD"])
    sched = Scheduler(
        Engine({"sim": source}), m.follow_coins(lambda: [_coin("AAA")]), interval_s=60
    )
    await sched.trigger("api")
    name = "coinharvest_coin_last_success_timestamp_seconds"
    assert m.registry.get_sample_value(name, {"symbol": "OLD"}) is None
    assert m.registry.get_sample_value(name, {"symbol": "AAA"}) is not None


async def test_a_restarted_service_starts_its_last_success_gauges_from_the_database(
    filled: Filled, db: AsyncEngine
) -> None:
    """A restart must not reset staleness to "unknown" (0), or a crash loop would never
    alert (found by review): the gauges start from the database's last successes."""
    from coinharvest.service.app import _seed_metrics

    registry = CollectorRegistry()
    symbols = [c.symbol for c in load_coins()]
    metrics = Metrics(["coingecko"], [*symbols, "NEW"], registry=registry)
    await _seed_metrics(metrics, db)
    get = registry.get_sample_value
    last_run = max(s.started_at for s in filled.summaries).timestamp()
    assert get("coinharvest_last_successful_run_timestamp_seconds") >= last_run  # type: ignore[operator]
    for symbol in symbols:
        assert get("coinharvest_coin_last_success_timestamp_seconds", {"symbol": symbol}) > 0  # type: ignore[operator]
    assert get("coinharvest_coin_last_success_timestamp_seconds", {"symbol": "NEW"}) == 0


def test_a_coin_added_later_starts_at_now_not_at_zero() -> None:
    registry = CollectorRegistry()
    metrics = Metrics([], ["BTC"], registry=registry, clock=lambda: 500.0)
    metrics.set_coins(["BTC", "ETH"])
    get = registry.get_sample_value
    assert get("coinharvest_coin_last_success_timestamp_seconds", {"symbol": "BTC"}) == 0
    assert get("coinharvest_coin_last_success_timestamp_seconds", {"symbol": "ETH"}) == 500
