"""The service's Prometheus metrics, fed by the engine as an `EngineObserver`.

One `Metrics` owns one `CollectorRegistry` (given or new; never the process-global one), so
tests and several services in one process never share series. Exposed (all prefixed
``coinharvest_``)::

    runs_total{status}                         counter   finished runs by status
    run_duration_seconds                       histogram duration of finished runs
    coins_total{status}                        counter   coins by outcome (ok/failed/deferred)
    coin_collection_duration_seconds{source}   histogram a coin's time, under each source it used
    requests_total{source,status}              counter   requests by HTTP status or error kind
    rate_limited_total{source}                 counter   429 answers
    retries_total{source}                      counter   jobs put back for another attempt
    limiter_wait_seconds{source}               histogram time a job waited in its lane
    jobs_in_flight{source}                     gauge     requests in progress now
    skipped_ticks_total                        counter   scheduled ticks skipped (run still going)
    scheduler_ticks_total                      counter   scheduled ticks (runs + skipped)
    scheduler_running                          gauge     1 while a run is in progress
    last_success_timestamp_seconds{symbol}     gauge     Unix time of the coin's last ok result
    source_circuit_open{source}                gauge     circuit breaker: 1 open, 0.5 half_open,
                                                         0 closed

With an engine (``coinharvest run``, `watch_limits`), each source's limits as they stand at
the scrape (`coinharvest.service.limit_metrics`, gauges)::

    source_concurrency_limit{source}           in-flight limit in force (learned or ceiling)
    source_concurrency_ceiling{source}         configured most in flight
    source_rate_limit_per_minute{source}       start rate in force (absent: no rate limit)
    source_rate_ceiling_per_minute{source}     configured start rate (absent: none)
    source_rate_refused_per_minute{source}     rate the upstream last refused or announced
    source_quota_used{source,period}           requests this UTC day / month (with a quota)
    source_quota_limit{source,period}          today's allowance / the monthly quota

Known label sets (every configured source, coin and status) are created up front, so their
series exist at 0 from the first scrape and ``rate()``/``absent()`` behave.

Contract (that of `EngineObserver`): every hook is synchronous, cheap and never raises.
``requests_total`` summed over ``status`` equals ``RunSummary.requests`` summed over runs,
``rate_limited_total`` equals ``rate_limited`` and ``retries_total`` equals ``retries``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from coinharvest.models import CoinResult, CoinStatus, JobStatus, RunStatus, RunSummary

if TYPE_CHECKING:
    from coinharvest.engine.adaptive import LimitView
    from coinharvest.service.scheduler import Scheduler

__all__ = ["CIRCUIT_VALUES", "CONTENT_TYPE_LATEST", "CircuitState", "Metrics", "SchedulerCollector"]

PREFIX = "coinharvest"
#: Run durations: from a sub-second emulator run to a deadline near a 60-minute interval.
RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: One coin, or one job's wait in its lane: milliseconds to minutes (cooldowns).
SHORT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: HTTP outcomes created at 0 for every source.
KNOWN_OUTCOMES = ("200", "429", "500", "503", "timeout", "error")
_RETRIED = (JobStatus.RETRIED, JobStatus.RATE_LIMITED)
#: A source's circuit breaker (`EngineObserver.circuit_changed`).
CircuitState = Literal["closed", "open", "half_open"]
#: ``source_circuit_open`` per state.
CIRCUIT_VALUES: dict[CircuitState, float] = {"closed": 0.0, "open": 1.0, "half_open": 0.5}
_CIRCUIT_STATES: frozenset[str] = frozenset(get_args(CircuitState))


class Metrics:
    """Prometheus metrics of one service; pass it to the engine as its observer.

    :param sources: source names whose series are created at 0.
    :param symbols: coin symbols whose ``last_success_timestamp_seconds`` starts at 0.
    :param registry: where to register; a new registry when None.
    :param clock: wall clock (Unix seconds) for the last-success gauge.
    """

    def __init__(
        self,
        sources: Iterable[str] = (),
        symbols: Iterable[str] = (),
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clock = clock
        self._circuits: dict[str, CircuitState] = {}
        self._define(self.registry)
        self._precreate(list(sources), list(symbols))

    def _define(self, r: CollectorRegistry) -> None:
        p = PREFIX
        self.runs = Counter(f"{p}_runs", "Finished runs by status.", ["status"], registry=r)
        self.run_duration = Histogram(
            f"{p}_run_duration_seconds",
            "Duration of finished runs.",
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.coins = Counter(f"{p}_coins", "Coins by outcome.", ["status"], registry=r)
        self.coin_duration = Histogram(
            f"{p}_coin_collection_duration_seconds",
            "Time from a coin's first request to its completion, under each source it used.",
            ["source"],
            buckets=SHORT_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            f"{p}_requests",
            "Requests by source and HTTP status (or error kind).",
            ["source", "status"],
            registry=r,
        )
        self.rate_limited = Counter(
            f"{p}_rate_limited", "429 answers by source.", ["source"], registry=r
        )
        self.retries = Counter(
            f"{p}_retries", "Jobs put back for another attempt.", ["source"], registry=r
        )
        self.limiter_wait = Histogram(
            f"{p}_limiter_wait_seconds",
            "Time a job waited in its source's lane before it started.",
            ["source"],
            buckets=SHORT_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            f"{p}_jobs_in_flight", "Requests in progress.", ["source"], registry=r
        )
        self.skipped_ticks = Counter(
            f"{p}_skipped_ticks",
            "Scheduled ticks skipped because a run was still going.",
            registry=r,
        )
        self.last_success = Gauge(
            f"{p}_last_success_timestamp_seconds",
            "Unix time of the coin's last successful collection (0: never, since start).",
            ["symbol"],
            registry=r,
        )
        self.circuit_open = Gauge(
            f"{p}_source_circuit_open",
            "The source's circuit breaker: 1 open (failing fast), 0.5 half open (probing), "
            "0 closed.",
            ["source"],
            registry=r,
        )

    def _precreate(self, sources: list[str], symbols: list[str]) -> None:
        for status in RunStatus:
            if status is not RunStatus.RUNNING:
                self.runs.labels(status.value)
        for coin_status in CoinStatus:
            self.coins.labels(coin_status.value)
        for source in sources:
            self._source_series(source)
        for symbol in symbols:
            self.last_success.labels(symbol)

    def _source_series(self, source: str) -> None:
        for outcome in KNOWN_OUTCOMES:
            self.requests.labels(source, outcome)
        self.rate_limited.labels(source)
        self.retries.labels(source)
        self.limiter_wait.labels(source)
        self.in_flight.labels(source)
        self.coin_duration.labels(source)
        self.circuit_changed(source, "closed")

    # ----------------------------------------------------------------- EngineObserver

    def job_started(self, source: str, waited_s: float) -> None:
        """Count the wait; one more request in flight."""
        self.limiter_wait.labels(source).observe(waited_s)
        self.in_flight.labels(source).inc()

    def job_finished(self, source: str, outcome: str, duration_s: float) -> None:
        """Count the request by outcome; one fewer in flight."""
        self.in_flight.labels(source).dec()
        self.requests.labels(source, outcome).inc()
        if outcome == "429":
            self.rate_limited.labels(source).inc()

    def coin_completed(self, result: CoinResult) -> None:
        """Count the coin; time it under each source it used; stamp its last success."""
        self.coins.labels(result.status.value).inc()
        for source in result.sources:
            self.coin_duration.labels(source).observe(result.duration_s)
        if result.status is CoinStatus.OK:
            self.last_success.labels(result.symbol).set(self.clock())

    def run_finished(self, summary: RunSummary) -> None:
        """Count the run and its retries per source (from its job records)."""
        self.runs.labels(summary.status.value).inc()
        self.run_duration.observe(summary.duration_s)
        for job in summary.jobs:
            if job.status in _RETRIED:
                self.retries.labels(job.source).inc()

    def circuit_changed(self, source: str, state: str) -> None:
        """Set ``source_circuit_open`` and remember the state (`circuits`); an unknown state
        is ignored (hooks never raise)."""
        if state not in _CIRCUIT_STATES:
            return
        known: CircuitState = state  # type: ignore[assignment]  # checked just above
        self._circuits[source] = known
        self.circuit_open.labels(source).set(CIRCUIT_VALUES[known])

    def circuits(self) -> dict[str, CircuitState]:
        """Each known source's circuit breaker state (a copy), by name."""
        return dict(sorted(self._circuits.items()))

    # ----------------------------------------------------------------- scheduler

    def tick_skipped(self) -> None:
        """A scheduled tick was skipped (the scheduler's ``on_skip`` hook)."""
        self.skipped_ticks.inc()

    def watch(self, scheduler: Scheduler) -> None:
        """Also expose `scheduler`'s tick count and whether a run is going."""
        self.registry.register(SchedulerCollector(scheduler))

    def watch_limits(self, views: Callable[[], Iterable[LimitView]]) -> None:
        """Also expose each source's limits, read from `views` (``engine.limit_views``) at
        every scrape (`coinharvest.service.limit_metrics`)."""
        from coinharvest.service.limit_metrics import LimitCollector

        self.registry.register(LimitCollector(views))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (serve as `CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)


class SchedulerCollector:
    """Reads a scheduler's live state at scrape time (no hook needed in the scheduler)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        """``scheduler_ticks_total`` and ``scheduler_running``."""
        ticks = CounterMetricFamily(
            f"{PREFIX}_scheduler_ticks", "Scheduled ticks (each one ran or was skipped)."
        )
        ticks.add_metric([], self.scheduler.stats.ticks)
        yield ticks
        running = GaugeMetricFamily(
            f"{PREFIX}_scheduler_running", "1 while a collection run is in progress."
        )
        running.add_metric([], 1.0 if self.scheduler.running else 0.0)
        yield running
