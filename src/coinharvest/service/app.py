"""Service mode: the scheduler and the HTTP API in one process and one event loop (DESIGN §5).

`run_service` composes, in order::

    settings → store (migrated; runs left ``running`` by a crash marked interrupted)
             → sources → engine(sink=RunTracker(store), observer=Metrics)
             → Scheduler(on_skip=metrics.tick_skipped) → uvicorn (no signal handlers of its own)

and then waits. At start-up it logs, per source with a quota, what the schedule would use of
it (a warning when more than the quota allows: those jobs are deferred once it is spent);
``/metrics`` and ``/api/limits`` read the engine's limits as they stand (`LimitsDesk`).

SIGINT/SIGTERM (``loop.add_signal_handler``) call ``scheduler.request_stop()``: the first lets
in-flight jobs finish within ``SHUTDOWN_GRACE_SECONDS`` and be stored, and the run is marked;
a second one cuts the run at once (still marked). Then the HTTP server stops, sources and
the store close, and the exit status is 0.

If the scheduler loop itself dies (a bug), the error is logged and, with HTTP on, the server
stays up so ``/health`` answers 503 (a liveness probe restarts the process); the exit status
is then 1. `serve_api` is the API and dashboard alone over an existing database (no
scheduler, no writes: ``/api/limits`` shows what the next run would start from), until a
signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from prometheus_client import disable_created_metrics
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.config import Settings
from coinharvest.engine import Engine
from coinharvest.engine.build import build_engine
from coinharvest.engine.hooks import ResultSink
from coinharvest.errors import ConfigError
from coinharvest.logs import get_logger
from coinharvest.loopserver import bind, start
from coinharvest.models import Coin, CoinResult, JobRecord, RunSummary
from coinharvest.service.api import ServiceState, create_app
from coinharvest.service.coinsfile import CoinsFile
from coinharvest.service.guard import trusted_hosts_for
from coinharvest.service.limits import LimitsDesk, desk_from_settings, quota_plans
from coinharvest.service.metrics import Metrics
from coinharvest.service.replicated import ReplicatedScheduler, replicate
from coinharvest.service.scheduler import Scheduler, SchedulerStats
from coinharvest.sources.base import close_sources

__all__ = ["CoinsFile", "RunTracker", "http_server", "run_service", "serve_api"]

log = get_logger("service")
#: Seconds the HTTP server gives open responses when it stops.
HTTP_GRACE_S = 3


class RunTracker:
    """A `ResultSink` wrapper that knows the id of the run in progress (for ``POST /api/runs``)."""

    def __init__(
        self, inner: ResultSink, after_run: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        self.inner = inner
        #: Called after each run is stored (pruning past RETENTION_DAYS).
        self.after_run = after_run
        self.current: str | None = None
        self._waiters: list[asyncio.Future[str]] = []

    async def run_started(
        self, run_id: str, trigger: str, started_at: datetime, coins: Sequence[Coin]
    ) -> None:
        """Note the run, wake `next_run_id` callers, then pass on."""
        self.current = run_id
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(run_id)
        await self.inner.run_started(run_id, trigger, started_at, coins)

    async def jobs_recorded(self, run_id: str, jobs: Sequence[JobRecord]) -> None:
        """Pass on."""
        await self.inner.jobs_recorded(run_id, jobs)

    async def coin_completed(self, run_id: str, result: CoinResult) -> None:
        """Pass on."""
        await self.inner.coin_completed(run_id, result)

    async def run_finished(self, summary: RunSummary) -> None:
        """Pass on; no run is current any more."""
        self.current = None
        await self.inner.run_finished(summary)
        if self.after_run is not None:
            await self.after_run()

    async def next_run_id(self, timeout_s: float = 2.0) -> str | None:
        """The id of the next run to start (within `timeout_s`), else None."""
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._waiters.remove(waiter)


@contextlib.asynccontextmanager
async def http_server(app: Any, host: str, port: int) -> AsyncIterator[str]:
    """Serve `app` on `host`:`port` (0: a free port) in the running loop; yields its base URL.

    uvicorn's own main loop and signal handlers are not used: the caller owns signals.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        ws="none",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=HTTP_GRACE_S,
    )
    server = uvicorn.Server(config)
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    try:
        await start(server, sock)
        bound = sock.getsockname()[1]
        yield f"http://{f'[{host}]' if ':' in host else host}:{bound}"
    finally:
        await server.shutdown(sockets=[sock])


@contextlib.contextmanager
def _signals(handler: Callable[[str], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to `handler(name)` while inside; restore on exit."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handler, sig.name)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run_service(
    settings: Settings,
    *,
    coins_file: Path | None = None,
    http: bool = True,
    host: str | None = None,
    port: int | None = None,
) -> int:
    """``coinharvest run`` (see the module docstring); returns the exit status.

    :raises ConfigError: bad coins file or listen address. :raises StoreError: database.
    """
    from coinharvest.sources.registry import build_sources
    from coinharvest.storage.factory import open_store

    disable_created_metrics()  # type: ignore[no-untyped-call]
    coins = CoinsFile(coins_file or settings.coins_file)
    names = {src for coin in coins() for chain in coin.chains for src in chain}
    store = await open_store(settings)
    sources = build_sources(settings, names=names)
    metrics = await _seeded_metrics(sorted(sources), [c.symbol for c in coins()], store.engine)
    tracker = RunTracker(store, _pruner(store.engine, settings.retention_days))
    engine = build_engine(
        settings, sources, tracker, observer=metrics, limit_store=store, database=store.engine
    )
    try:
        sched = _scheduler(settings, engine, coins, metrics)
        desk = desk_from_settings(settings, sources, store.engine, engine=engine, resetter=store)
        state = _state(settings, store.engine, metrics, coins, sched, tracker, desk)
        loop = replicate(settings, store, sched, state) or sched
        address = (host or settings.http_host, settings.http_port if port is None else port)
        return await _supervise(state, loop, address if http else None, settings.trusted_hosts)
    finally:
        await close_sources(sources.values())
        if engine.shared is not None:
            await engine.shared.aclose()  # releases and cooldowns in flight, then the lock
        await store.aclose()


def _state(
    settings: Settings,
    db: AsyncEngine,
    metrics: Metrics,
    coins: CoinsFile,
    sched: Scheduler,
    tracker: RunTracker,
    desk: LimitsDesk,
) -> ServiceState:
    """What the API of ``coinharvest run`` reads."""
    return ServiceState(
        db=db,
        metrics=metrics,
        coins=coins,
        scheduler=sched,
        api_token=_token(settings),
        started_run=tracker.next_run_id,
        limits=desk,
        leader_check_s=settings.leader_check_seconds,
    )


async def _seeded_metrics(sources: list[str], symbols: list[str], db: AsyncEngine) -> Metrics:
    """The service's metrics, their last-success gauges started from the database (so a
    restart does not reset them to 0)."""
    metrics = Metrics(sources, symbols)
    await _seed_metrics(metrics, db)
    return metrics


async def _seed_metrics(metrics: Metrics, db: AsyncEngine) -> None:
    """Last-success gauges from the database (`queries.success_times`)."""
    from coinharvest.storage.queries import success_times

    last_run, coins = await success_times(db)
    metrics.seed(
        last_run.timestamp() if last_run is not None else None,
        {symbol: at.timestamp() for symbol, at in coins.items()},
    )


def _pruner(db: AsyncEngine, retention_days: int) -> Callable[[], Awaitable[object]]:
    """What runs after each scheduled run: pruning past RETENTION_DAYS (`storage.retention`)."""
    from coinharvest.storage.retention import prune_after_run

    return lambda: prune_after_run(db, retention_days)


def _token(settings: Settings) -> str | None:
    token = settings.coinharvest_api_token
    return token.get_secret_value() if token is not None else None


def _scheduler(settings: Settings, engine: Engine, coins: CoinsFile, metrics: Metrics) -> Scheduler:
    interval_s = settings.collection_interval_minutes * 60.0
    timeout = settings.run_timeout_minutes
    sched = Scheduler(
        engine,
        metrics.follow_coins(coins),  # a coin removed from the file loses its series
        interval_s=interval_s,
        run_timeout_s=timeout * 60.0 if timeout is not None else None,
        jitter_s=settings.collection_jitter_seconds,
        grace_s=settings.shutdown_grace_seconds,
        on_skip=metrics.tick_skipped,
    )
    metrics.watch(sched)
    metrics.watch_limits(engine.limit_views)
    log.info(
        "service: %d coins every %g s (run deadline %g s, shutdown grace %g s)",
        len(coins()),
        interval_s,
        sched.run_timeout_s,
        sched.grace_s,
    )
    _log_quota_plans(settings, engine, coins())
    return sched


def _log_quota_plans(settings: Settings, engine: Engine, coins: Sequence[Coin]) -> None:
    """One line per source with a quota: what the schedule would use of it (a warning when
    more than it allows)."""
    limits = {name: limiter.limits for name, limiter in engine.limiters.items()}
    interval = settings.collection_interval_minutes
    for plan in quota_plans(limits, engine.batch_sizes, coins, interval):
        if plan.exceeds:
            log.warning(
                "quota: %s would exceed %s's quota; its jobs will be deferred when the quota "
                "is spent",
                plan.describe(),
                plan.source,
            )
        else:
            log.info("quota: %s", plan.describe())


async def _supervise(
    state: ServiceState,
    loop: Scheduler | ReplicatedScheduler,
    address: tuple[str, int] | None,
    extra_hosts: str = "",
) -> int:
    """Run the scheduler loop (and the HTTP server) until stopped; the exit status."""
    stopped = asyncio.Event()
    sched = loop if isinstance(loop, Scheduler) else loop.sched

    def on_signal(name: str) -> None:
        log.info("received %s", name)
        stopped.set()
        sched.request_stop()

    with _signals(on_signal):
        async with contextlib.AsyncExitStack() as stack:
            if address is not None:  # listen first: a busy port fails before any run starts
                server = http_server(_app(state, address[0], extra_hosts), *address)
                url = await stack.enter_async_context(server)
                log.info("HTTP API and dashboard on %s/ (/metrics, /health, /docs)", url)
                if isinstance(loop, ReplicatedScheduler):
                    loop.leadership.http_url = url
            loop_task = asyncio.get_running_loop().create_task(loop.serve(), name="scheduler")
            state.loop_task = loop_task
            await asyncio.wait({loop_task})
            code = _loop_outcome(loop_task)
            if code and address is not None:
                log.error("serving /health as 503 until stopped (SIGTERM)")
                await stopped.wait()
    return code


def _app(state: ServiceState, bind_host: str, extra_hosts: str = "") -> FastAPI:
    """The API, trusting the ``Host`` names of `bind_host`, of loopback and ``TRUSTED_HOSTS``
    (`extra_hosts`, comma-separated); any other name is refused (DNS rebinding)."""
    extra = tuple(h.strip().lower() for h in extra_hosts.split(",") if h.strip())
    return create_app(state, trusted_hosts=(*trusted_hosts_for(bind_host), *extra))


def _loop_outcome(loop_task: asyncio.Task[SchedulerStats]) -> int:
    """Log how the scheduler loop ended: 0 after a requested stop, 1 if it died."""
    error = loop_task.exception()
    if error is not None:
        log.error("the scheduler loop died: %r", error, exc_info=error)
        return 1
    stats = loop_task.result()
    log.info("stopped: %d ticks, %d runs, %d skipped", stats.ticks, stats.runs, stats.skipped_ticks)
    return 0


async def serve_api(
    settings: Settings,
    *,
    coins_file: Path | None = None,
    host: str | None = None,
    port: int | None = None,
) -> int:
    """``coinharvest serve``: the API and dashboard over the database, until SIGINT/SIGTERM."""
    from coinharvest.storage.factory import reader

    disable_created_metrics()  # type: ignore[no-untyped-call]
    coins = CoinsFile(coins_file or settings.coins_file)
    stopped = asyncio.Event()
    async with reader(settings) as db:
        state = ServiceState(
            db=db,
            metrics=Metrics(),
            coins=coins,
            limits=await _serve_desk(settings, coins, db),
            leader_check_s=settings.leader_check_seconds,
        )
        address = (host or settings.http_host, settings.http_port if port is None else port)
        with _signals(lambda name: stopped.set()):
            app = _app(state, address[0], settings.trusted_hosts)
            async with http_server(app, *address) as url:
                log.info("HTTP API and dashboard on %s/ (no scheduler: `serve` mode)", url)
                await stopped.wait()
    return 0


async def _serve_desk(settings: Settings, coins: CoinsFile, db: AsyncEngine) -> LimitsDesk:
    """The limits of the coins' sources, read from `db` (no engine: nothing to reset)."""
    from coinharvest.sources.registry import build_sources

    names = {src for coin in coins() for chain in coin.chains for src in chain}
    sources = build_sources(settings, names=names)
    try:
        return desk_from_settings(settings, sources, db)
    finally:
        await close_sources(sources.values())
