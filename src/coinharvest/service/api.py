"""The HTTP API of service mode: health, Prometheus metrics, JSON over the store, dashboard.

`create_app(state)` builds a FastAPI app over a `ServiceState` (the store's engine, the
metrics, the configured coins and, in ``coinharvest run``, the scheduler). FastAPI because
its query validation gives the 422 reasons and the OpenAPI document (``/openapi.json``,
``/docs``) for free; the routes stay thin calls into `coinharvest.storage.queries`.

Routes::

    GET  /                       dashboard (static HTML + JS from coinharvest/web)
    GET  /health                 200, or 503 when the scheduler loop died or the DB is down;
                                 with each source's circuit breaker state and who leads
                                 (``replication``, `coinharvest.service.replication`)
    GET  /metrics                Prometheus text format
    GET  /api/coins              configured coins
    GET  /api/latest             newest value of every metric of every (or ?symbol=) coin
    GET  /api/history/{symbol}   ?metric=price_usd&since=7d|ISO&until=..., oldest first:
                                 &limit=1000&cursor=... pages, or &max_points=N for a
                                 chart (`coinharvest.service.history_api`)
    GET  /api/runs               ?limit=20&cursor=..., newest first, next_cursor
    GET  /api/runs/{run_id}      one run with per-coin results and its job timeline
    POST /api/runs               start a run now; only when a token and a scheduler exist
                                 (bearer token, declared as the ``HTTPBearer`` scheme)
    GET  /api/limits             each source's limits, learned and configured, quota use
    DELETE /api/limits[/{source}]  forget learned limits (bearer token; `limits_api`)

Every GET route answers HEAD too; every response carries the security headers, and a request
whose ``Host`` is not trusted gets a 400 (`coinharvest.service.guard`).

Errors are JSON ``{"error": "<one line>", "status": <code>}`` (422 adds ``detail``): 400 for
an untrusted ``Host``; 404 for an unknown coin, metric, run or path; 422 for a bad query
value; 401 for a missing or wrong bearer token (compared in constant time); 409 while a run
is going; 503 when the database cannot be read; 500 (one line, details in the log) for a bug.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import fastapi_offline
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException
from starlette.routing import Match

from coinharvest import __version__
from coinharvest.errors import ConfigError, StoreError
from coinharvest.models import Coin
from coinharvest.service.auth import bearer_refusal
from coinharvest.service.auth import json_error as _error
from coinharvest.service.guard import LOCAL_HOSTS, SECURITY_HEADERS, Guard, docs_csp
from coinharvest.service.history_api import add_history_routes, refuse
from coinharvest.service.limits import LimitsDesk
from coinharvest.service.limits_api import add_limit_routes
from coinharvest.service.manual_runs import NoLeader
from coinharvest.service.metrics import CONTENT_TYPE_LATEST, Metrics
from coinharvest.service.replication import replication
from coinharvest.service.scheduler import RunInProgress, Scheduler
from coinharvest.service.schemas import (
    BearerToken,
    CoinOut,
    CoinsOut,
    Cursor,
    ErrorOut,
    Health,
    LatestOut,
    RunDetailOut,
    RunId,
    RunsOut,
    RunStarted,
    SchedulerState,
    SymbolItem,
)
from coinharvest.storage import queries
from coinharvest.storage.paging import runs_page
from coinharvest.storage.queries import RunRow

__all__ = ["ServiceState", "create_app"]

WEB_DIR = Path(str(files("coinharvest.service") / "web"))
#: How long /health waits for the database before calling it unreachable.
DB_PROBE_TIMEOUT_S = 3.0


@dataclass(slots=True)
class ServiceState:
    """What the API reads. `scheduler` and `loop_task` are None under ``coinharvest serve``.

    :ivar loop_task: the task running ``scheduler.serve()``; done = the loop died.
    :ivar api_token: enables ``POST /api/runs`` (with a scheduler).
    :ivar started_run: called right after a trigger; returns the new run's id (or None).
    :ivar start_run: replaces "trigger, then `started_run`" for ``POST /api/runs`` when set
        (replicas: the run is forwarded to the leader); returns the run's id (or None),
        raises `RunInProgress` when one is going.
    :ivar limits: learned limits and quotas (``/api/limits``; None: an empty list).
    :ivar replica_id: this process's row in ``replicas`` (None: not a replica).
    :ivar is_leader: whether this replica leads now, cheap, never raises (None: no election,
        ``/health`` says mode ``single`` unless the table has live replicas).
    :ivar leader_check_s: LEADER_CHECK_SECONDS, for when a replica's heartbeat is stale.
    """

    db: AsyncEngine
    metrics: Metrics
    coins: Callable[[], Sequence[Coin]]
    scheduler: Scheduler | None = None
    loop_task: asyncio.Task[Any] | None = None
    api_token: str | None = None
    started_run: Callable[[], Awaitable[str | None]] | None = None
    limits: LimitsDesk | None = None
    start_run: Callable[[], Awaitable[str | None]] | None = None
    replica_id: str | None = None
    is_leader: Callable[[], bool] | None = None
    leader_check_s: float = 1.0

    def scheduler_state(self) -> SchedulerState:
        """Where the scheduler loop is (see `Health.scheduler`)."""
        if self.scheduler is None:
            return "not running"
        if self.loop_task is None:
            return "starting"
        if self.loop_task.done():
            return "stopping" if self.scheduler.stopping else "dead"
        if self.scheduler.stopping:
            return "stopping"
        return "running" if self.scheduler.running else "idle"


# --------------------------------------------------------------------------- app


def create_app(state: ServiceState, *, trusted_hosts: Iterable[str] = LOCAL_HOSTS) -> FastAPI:
    """The API over `state` (see the module docstring for routes and errors).

    :param trusted_hosts: the ``Host`` names served (any port); others get a 400. See
        `coinharvest.service.guard` (``*.example.com``, ``*``, a wildcard bind address).
    """
    app = FastAPI(
        title="coinharvest",
        version=__version__,
        description="Crypto coin metrics collected from rate-limited APIs.",
        docs_url=None,
        redoc_url=None,
        responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    )
    app.state.service = state
    app.add_middleware(Guard, trusted_hosts=tuple(trusted_hosts))
    _install_error_handlers(app)
    _add_docs_route(app)
    _add_system_routes(app, state)
    _add_coin_routes(app, state)
    add_history_routes(app, state.db, state.coins)
    _add_run_routes(app, state)
    if state.api_token and state.scheduler is not None:
        _add_trigger_route(app, state, state.api_token, state.scheduler)
    add_limit_routes(app, state.limits, state.api_token)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        response = _error(exc.status_code, detail)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every route of the path, not only the first one tried
            response.headers["Allow"] = _allowed_methods(request)
        return response

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        reasons = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors)
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        return _error(422, reasons or "invalid request", detail=detail)

    async def store_down(request: Request, exc: Exception) -> Response:
        return _error(503, f"database unavailable: {exc}")

    async def bug(request: Request, exc: Exception) -> Response:
        # Sent by Starlette's outermost middleware, outside `Guard`: add its headers here.
        response = _error(500, f"internal error: {type(exc).__name__} (see the service log)")
        response.headers.update(SECURITY_HEADERS)
        return response

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StoreError, store_down)
    app.add_exception_handler(Exception, bug)


def _allowed_methods(request: Request) -> str:
    """The methods of every route matching the request's path (HEAD wherever GET)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _where(loc: Sequence[Any]) -> str:
    """``("query", "limit")`` → ``limit``; a body-less location keeps its one part."""
    if not loc:
        return "request"
    return ".".join(str(part) for part in loc[1:]) or str(loc[0])


def _not_found(message: str) -> HTTPException:
    return HTTPException(404, message)


# --------------------------------------------------------------------------- routes


def _add_docs_route(app: FastAPI) -> None:
    """FastAPI's Swagger UI at ``/docs``, its script, style and icon served from
    ``/docs/assets`` (the files of the ``fastapi-offline`` package: no CDN, works offline),
    with a CSP of its own (those files, its one inline script by hash)."""
    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "",
        title=f"{app.title} - API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png",
    )
    body = bytes(page.body)
    csp = docs_csp(body)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(body, headers={"Content-Security-Policy": csp})


def _add_system_routes(app: FastAPI, state: ServiceState) -> None:
    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    async def health() -> JSONResponse:
        """Liveness: 503 when the scheduler loop died or the database is unreachable."""
        report = await _health(state)
        code = 200 if report.status == "ok" else 503
        return JSONResponse(report.model_dump(mode="json"), status_code=code)

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus text exposition format."""
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _health(state: ServiceState) -> Health:
    sched = state.scheduler_state()
    db_error = await _probe(state.db)
    last: RunRow | None = None
    if db_error is None:
        try:
            last = next(iter(await queries.list_runs(state.db, limit=1)), None)
        except StoreError as exc:
            db_error = str(exc)
    healthy = db_error is None and sched != "dead"
    stats = state.scheduler.stats if state.scheduler is not None else None
    return Health(
        status="ok" if healthy else "unhealthy",
        version=__version__,
        scheduler=sched,
        scheduler_alive=sched in ("starting", "running", "idle", "stopping"),
        database="reachable" if db_error is None else "unreachable",
        database_error=db_error,
        last_run=last,
        ticks=stats.ticks if stats else None,
        skipped_ticks=stats.skipped_ticks if stats else None,
        sources=state.metrics.circuits(),
        replication=await replication(
            state.db if db_error is None else None,
            replica_id=state.replica_id,
            is_leader=state.is_leader,
            check_s=state.leader_check_s,
        ),
    )


async def _probe(db: AsyncEngine) -> str | None:
    """None when ``SELECT 1`` answers in time, else the reason (one line)."""
    try:
        async with asyncio.timeout(DB_PROBE_TIMEOUT_S), db.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except TimeoutError:
        return f"no answer within {DB_PROBE_TIMEOUT_S:g} s"
    except Exception as exc:
        return (str(exc).splitlines() or [type(exc).__name__])[0]
    return None


def _add_coin_routes(app: FastAPI, state: ServiceState) -> None:
    @app.get("/api/coins", response_model=CoinsOut)
    async def coins() -> CoinsOut:
        """The configured coins (coins file), by priority."""
        return CoinsOut(coins=[_coin_out(c) for c in state.coins()])

    @app.get("/api/latest", response_model=LatestOut)
    async def latest(
        symbol: Annotated[
            list[SymbolItem] | None, Query(max_length=100, description="Repeat for several.")
        ] = None,
    ) -> LatestOut:
        """The newest value of every metric of every coin (or of the `symbol`s)."""
        wanted = [s.upper() for s in symbol or []]
        values = await queries.latest_values(state.db, wanted)
        missing = sorted(set(wanted) - {v.symbol for v in values} - _configured(state))
        if missing:
            raise _not_found(f"unknown coin: {', '.join(missing)}")
        return LatestOut(values=values)


def _add_run_routes(app: FastAPI, state: ServiceState) -> None:
    @app.get("/api/runs", response_model=RunsOut)
    async def runs(
        limit: Annotated[int, Query(ge=1, le=500)] = 20, cursor: Cursor = None
    ) -> RunsOut:
        """The newest runs, newest first; then `next_cursor` (null: no more) as `cursor`."""
        try:
            page = await runs_page(state.db, limit=limit, cursor=cursor)
        except ConfigError as exc:
            raise refuse("cursor", str(exc)) from None
        return RunsOut(runs=page.rows, next_cursor=page.next_cursor)

    @app.get("/api/runs/{run_id}", response_model=RunDetailOut)
    async def run_detail(run_id: RunId) -> RunDetailOut:
        """One run (a unique id prefix is enough) with per-coin results and job timeline."""
        detail = await queries.run_detail(state.db, run_id)
        if detail is None:
            raise _not_found(f"unknown run: {run_id}")
        return RunDetailOut(run=detail.run, coins=detail.coins, jobs=detail.jobs)


def _coin_out(coin: Coin) -> CoinOut:
    return CoinOut(
        symbol=coin.symbol,
        name=coin.name,
        priority=coin.priority,
        ids=dict(coin.ids),
        chains=[list(chain) for chain in coin.chains],
    )


def _configured(state: ServiceState) -> set[str]:
    return {c.symbol.upper() for c in state.coins()}


def _add_trigger_route(app: FastAPI, state: ServiceState, token: str, sched: Scheduler) -> None:
    expected = token.encode()

    @app.post(
        "/api/runs",
        status_code=202,
        response_model=RunStarted,
        responses={401: {"model": ErrorOut}, 409: {"model": ErrorOut}, 503: {"model": ErrorOut}},
    )
    async def start_run(
        credentials: BearerToken,
    ) -> Response:
        """Start a collection run now (trigger ``api``), on the leader when replicas run.
        Needs the bearer token. 409: a run is going; 503: no replica leads."""
        if (refused := bearer_refusal(credentials, expected)) is not None:
            return refused
        try:
            run_id = await _start(state, sched)
        except NoLeader as exc:
            return _error(503, str(exc))
        except RunInProgress as exc:
            return _error(409, str(exc))
        href = f"/api/runs/{run_id}" if run_id else None
        body = RunStarted(run_id=run_id, status="started", href=href)
        return JSONResponse(body.model_dump(), status_code=202)


async def _start(state: ServiceState, sched: Scheduler) -> str | None:
    """Start a run (trigger ``api``) and return its id (None: not known in time)."""
    if state.start_run is not None:
        return await state.start_run()
    sched.trigger("api")
    return await state.started_run() if state.started_run else None
