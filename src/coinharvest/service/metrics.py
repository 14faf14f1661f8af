"""The service's Prometheus metrics, fed by the engine as an `EngineObserver`.

One `Metrics` owns one `CollectorRegistry` (given or new; never the process-global one), so
tests and several services in one process never share series. The metric contract (names
follow the Prometheus exporter conventions: base units, ``_total`` counters, ``_seconds``,
``_timestamp_seconds``, ``_info``)::

    coinharvest_build_info{version}                      gauge     always 1; the version running
    coinharvest_runs_total{status}                       counter   finished runs by status
                                                                   (completed/partial/failed/
                                                                   interrupted)
    coinharvest_run_duration_seconds                     histogram duration of finished runs
    coinharvest_last_successful_run_timestamp_seconds    gauge     Unix time the last run that
                                                                   collected a coin (completed or
                                                                   partial) finished; 0: none yet
    coinharvest_coins_total{status}                      counter   coins by outcome
                                                                   (ok/failed/deferred)
    coinharvest_coin_collection_duration_seconds{source} histogram a coin's time, under each
                                                                   source it used
    coinharvest_coin_last_success_timestamp_seconds{symbol}
                                                         gauge     Unix time of the coin's last ok
                                                                   result (0: never, since start)
    coinharvest_requests_total{source,code,outcome}      counter   finished requests (see below)
    coinharvest_retries_total{source}                    counter   jobs put back for another try
    coinharvest_limiter_wait_seconds{source}             histogram time a job waited in its lane
    coinharvest_jobs_in_flight{source}                   gauge     requests in progress now
    coinharvest_source_circuit_open{source}              gauge     circuit breaker: 1 open,
                                                                   0.5 half_open, 0 closed
    coinharvest_skipped_ticks_total                      counter   scheduled ticks skipped (a run
                                                                   was still going)
    process_*, python_info                                         prometheus_client's process and
                                                                   platform collectors (Linux)

With a scheduler (`watch`), read from it at every scrape::

    coinharvest_scheduler_ticks_total                    counter   scheduled ticks (runs + skipped)
    coinharvest_run_in_progress                          gauge     1 while a run is going, else 0
    coinharvest_collection_interval_seconds              gauge     COLLECTION_INTERVAL_MINUTES·60

Replicas (`coinharvest.service.replica_metrics`): ``coinharvest_leader`` (1 while this process
runs the scheduled ticks) and ``coinharvest_takeovers_total``, fed by `leading`/`took_over`.

With an engine (`watch_limits`), each source's limits as they stand at the scrape:
``coinharvest_source_{concurrency_limit,concurrency_ceiling,rate_limit_per_minute,
rate_ceiling_per_minute,rate_refused_per_minute,quota_used,quota_limit}``
(`coinharvest.service.limit_metrics` documents them).

**Requests.** ``code`` is the HTTP status of the answer, or ``none`` when there was none (a
timeout, a connection error, a cancelled request, an error with no status); ``outcome`` is
what the engine made of it: ``ok``, ``rate_limited`` (a 429, or a 503 with Retry-After, which
the engine reports as code ``429``), ``timeout``, ``error`` (any other failure) or
``cancelled`` (cut by a stop). Every ``code`` has a single ``outcome``, so ``sum by (code)``
and ``sum by (outcome)`` both add up to the same total.

**Known label sets** (every configured source, coin and status) are created up front, so their
series exist at 0 from the first scrape and ``rate()``/``absent()`` behave. **Removed coins:**
`set_coins` (called through `follow_coins` each time the scheduler reads the coins file, i.e.
at every run start) removes the series of coins no longer configured.

Contract (that of `EngineObserver`): every hook is synchronous, cheap and never raises.
``requests_total`` summed equals ``RunSummary.requests`` summed over runs,
``requests_total{outcome="rate_limited"}`` equals ``rate_limited`` and ``retries_total``
equals ``retries``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from coinharvest.models import Coin, CoinResult, CoinStatus, JobStatus, RunStatus, RunSummary
from coinharvest.service.replica_metrics import LeaderMetrics

if TYPE_CHECKING:
    from coinharvest.engine.adaptive import LimitView
    from coinharvest.service.scheduler import Scheduler

__all__ = [
    "CIRCUIT_VALUES",
    "CONTENT_TYPE_LATEST",
    "CircuitState",
    "Metrics",
    "SchedulerCollector",
    "request_labels",
]

PREFIX = "coinharvest"
#: Run durations: from a sub-second emulator run to a deadline near a 60-minute interval.
RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: One coin, or one job's wait in its lane: milliseconds to minutes (cooldowns).
SHORT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: ``requests_total`` label pairs (code, outcome) created at 0 for every source.
KNOWN_REQUESTS = (
    ("200", "ok"),
    ("429", "rate_limited"),
    ("500", "error"),
    ("503", "error"),
    ("none", "timeout"),
    ("none", "error"),
)
#: The engine's outcome labels (`outcome_label`) that carry no HTTP status.
_NO_ANSWER = {"timeout": "timeout", "error": "error", "cancelled": "cancelled"}
#: Run statuses after which the service has fresh data (some coin was collected).
_SUCCESSFUL_RUNS = (RunStatus.COMPLETED, RunStatus.PARTIAL)
_RETRIED = (JobStatus.RETRIED, JobStatus.RATE_LIMITED)
#: A source's circuit breaker (`EngineObserver.circuit_changed`).
CircuitState = Literal["closed", "open", "half_open"]
#: ``source_circuit_open`` per state.
CIRCUIT_VALUES: dict[CircuitState, float] = {"closed": 0.0, "open": 1.0, "half_open": 0.5}
_CIRCUIT_STATES: frozenset[str] = frozenset(get_args(CircuitState))


def request_labels(outcome: str) -> tuple[str, str]:
    """``(code, outcome)`` labels of ``requests_total`` for the engine's outcome label of a
    finished request (``"200"``, ``"429"``, ``"503"``, ``"timeout"``, ``"error"``,
    ``"cancelled"``; `coinharvest.engine.execution.outcome_label`)."""
    if outcome in _NO_ANSWER:
        return "none", _NO_ANSWER[outcome]
    if outcome == "429":
        return "429", "rate_limited"
    if outcome.isdigit():
        return outcome, "ok" if outcome.startswith("2") else "error"
    return "none", "error"


class Metrics(LeaderMetrics):
    """Prometheus metrics of one service; pass it to the engine as its observer.

    :param sources: source names whose series are created at 0.
    :param symbols: the configured coins: their ``coin_last_success_timestamp_seconds``
        starts at 0 (`set_coins` changes the set later).
    :param registry: where to register; a new registry when None. The process and platform
        collectors are added unless the registry has them already (the global one does).
    :param clock: wall clock (Unix seconds) for the last-success gauges.
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
        self._symbols: set[str] = set()
        self._define(self.registry)
        self._define_leadership(self.registry)
        _add_process_collectors(self.registry)
        self._precreate(list(sources))
        self.set_coins(symbols)
        self._started = True  # from now on a coin added to the file starts at "now"

    def _define(self, r: CollectorRegistry) -> None:
        p = PREFIX
        from coinharvest import __version__

        build = Gauge(
            f"{p}_build_info", "The coinharvest version running.", ["version"], registry=r
        )
        build.labels(__version__).set(1)
        self.runs = Counter(f"{p}_runs", "Finished runs by status.", ["status"], registry=r)
        self.run_duration = Histogram(
            f"{p}_run_duration_seconds",
            "Duration of finished runs.",
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.last_good_run = Gauge(
            f"{p}_last_successful_run_timestamp_seconds",
            "Unix time the last run that collected coins (completed or partial) finished; "
            "0: none since start.",
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
            "Finished requests by source, HTTP status (code; none: no answer) and outcome "
            "(ok, rate_limited, timeout, error, cancelled).",
            ["source", "code", "outcome"],
            registry=r,
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
            f"{p}_coin_last_success_timestamp_seconds",
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

    def _precreate(self, sources: list[str]) -> None:
        for status in RunStatus:
            if status is not RunStatus.RUNNING:
                self.runs.labels(status.value)
        for coin_status in CoinStatus:
            self.coins.labels(coin_status.value)
        for source in sources:
            self._source_series(source)

    def _source_series(self, source: str) -> None:
        for code, outcome in KNOWN_REQUESTS:
            self.requests.labels(source, code, outcome)
        self.retries.labels(source)
        self.limiter_wait.labels(source)
        self.in_flight.labels(source)
        self.coin_duration.labels(source)
        self.circuit_changed(source, "closed")

    # ----------------------------------------------------------------- configured coins

    def set_coins(self, symbols: Iterable[str]) -> None:
        """The coins configured now: a removed one's series is dropped (it no longer appears
        in the exposition); a new one's last-success series starts at 0 when the service
        starts (`seed` then sets what the database remembers) and at "now" when the coin is
        added later (it is not stale before it had its chance)."""
        wanted = set(symbols)
        for gone in self._symbols - wanted:
            self.last_success.remove(gone)
        for new in wanted - self._symbols:
            child = self.last_success.labels(new)
            if getattr(self, "_started", False):
                child.set(self.clock())
        self._symbols = wanted

    def seed(self, last_run: float | None, coins: Mapping[str, float]) -> None:
        """Start the last-success gauges from the database (Unix seconds): the last
        successful run, and each configured coin's last ``ok``. A restarted process then
        reports how stale the data really is, and a crash loop cannot hide it."""
        if last_run is not None:
            self.last_good_run.set(last_run)
        for symbol, at in coins.items():
            if symbol in self._symbols:
                self.last_success.labels(symbol).set(at)

    def follow_coins(self, coins: Callable[[], Sequence[Coin]]) -> Callable[[], Sequence[Coin]]:
        """`coins`, calling `set_coins` with what it returns each time (give the scheduler
        this: it reads the coins before each run, so removed coins vanish at the next run)."""

        def read() -> Sequence[Coin]:
            current = coins()
            self.set_coins(c.symbol for c in current)
            return current

        return read

    # ----------------------------------------------------------------- EngineObserver

    def job_started(self, source: str, waited_s: float) -> None:
        """Count the wait; one more request in flight."""
        self.limiter_wait.labels(source).observe(waited_s)
        self.in_flight.labels(source).inc()

    def job_finished(self, source: str, outcome: str, duration_s: float) -> None:
        """Count the request by code and outcome (`request_labels`); one fewer in flight."""
        self.in_flight.labels(source).dec()
        self.requests.labels(source, *request_labels(outcome)).inc()

    def coin_completed(self, result: CoinResult) -> None:
        """Count the coin; time it under each source it used; stamp its last success."""
        self.coins.labels(result.status.value).inc()
        for source in result.sources:
            self.coin_duration.labels(source).observe(result.duration_s)
        if result.status is CoinStatus.OK:
            self._symbols.add(result.symbol)
            self.last_success.labels(result.symbol).set(self.clock())

    def run_finished(self, summary: RunSummary) -> None:
        """Count the run and its retries per source (from its job records); stamp the last
        successful run."""
        self.runs.labels(summary.status.value).inc()
        self.run_duration.observe(summary.duration_s)
        if summary.status in _SUCCESSFUL_RUNS:
            self.last_good_run.set(self.clock())
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
        """Also expose `scheduler`'s ticks, interval and whether a run is going; without an
        election this process now leads (`LeaderMetrics`)."""
        self.registry.register(SchedulerCollector(scheduler))
        self._has_scheduler()

    def watch_limits(self, views: Callable[[], Iterable[LimitView]]) -> None:
        """Also expose each source's limits, read from `views` (``engine.limit_views``) at
        every scrape (`coinharvest.service.limit_metrics`)."""
        from coinharvest.service.limit_metrics import LimitCollector

        self.registry.register(LimitCollector(views))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (serve as `CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)


def _add_process_collectors(registry: CollectorRegistry) -> None:
    """``process_*`` (Linux /proc; nothing elsewhere) and ``python_info``, unless `registry`
    has them already (the process-global registry registers both on import)."""
    for make in (ProcessCollector, PlatformCollector):
        with contextlib.suppress(ValueError):  # "Duplicated timeseries": already there
            make(registry=registry)


class SchedulerCollector:
    """Reads a scheduler's live state at scrape time (no hook needed in the scheduler)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        """``scheduler_ticks_total``, ``run_in_progress`` and ``collection_interval_seconds``."""
        ticks = CounterMetricFamily(
            f"{PREFIX}_scheduler_ticks", "Scheduled ticks (each one ran or was skipped)."
        )
        ticks.add_metric([], self.scheduler.stats.ticks)
        yield ticks
        yield GaugeMetricFamily(
            f"{PREFIX}_run_in_progress",
            "1 while a collection run (scheduled or asked for) is in progress, else 0.",
            value=1.0 if self.scheduler.running else 0.0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_collection_interval_seconds",
            "Time between scheduled runs (COLLECTION_INTERVAL_MINUTES).",
            value=self.scheduler.interval_s,
        )
