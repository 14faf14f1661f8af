"""The service-mode commands of the CLI: ``run`` and ``serve``. `register(app)` adds both.

Heavy imports (FastAPI, uvicorn, SQLAlchemy) happen inside the commands, so ``--help``
stays fast. A bad setting or an unusable database prints ONE line on stderr and exits 2.
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from coinharvest.cli.console import print_error
from coinharvest.cli.lazy import run as run_async
from coinharvest.cli.startup import settings_and_logging
from coinharvest.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from coinharvest.config import Settings

__all__ = ["register"]


CoinsOption = Annotated[
    Path | None,
    typer.Option(
        "--coins",
        help="Coins file (TOML). Default: $COINS_FILE, else the 11 packaged coins. "
        "Re-read before each run when it changes.",
        dir_okay=False,
    ),
]
HostOption = Annotated[
    str | None,
    typer.Option("--host", help="Address of the HTTP API and dashboard. Default: $HTTP_HOST."),
]
PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=0,
        max=65535,
        help="Port of the HTTP API (0: any free port). Default: $HTTP_PORT.",
    ),
]
ServeCoinsOption = Annotated[
    Path | None,
    typer.Option(
        "--coins",
        help="Coins file (TOML) the API and dashboard list. Default: $COINS_FILE, else the "
        "11 packaged coins.",
        dir_okay=False,
    ),
]
NoHttpOption = Annotated[
    bool, typer.Option("--no-http", help="Collect only: no HTTP API, /metrics or dashboard.")
]


def register(app: typer.Typer) -> None:
    """Add the ``run`` and ``serve`` commands to `app`."""
    app.command("run")(run)
    app.command("serve")(serve)


def run(
    coins_file: CoinsOption = None,
    no_http: NoHttpOption = False,
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """Run as a service: collect now, then every interval; serve the API.

    Collects at once, then every COLLECTION_INTERVAL_MINUTES. Each run has a
    deadline (RUN_TIMEOUT_MINUTES, default 90 % of the interval): jobs not
    started by then are deferred. A tick that comes while a run is still
    going is skipped and counted, never overlapped.

    HTTP on HTTP_HOST:HTTP_PORT (127.0.0.1:8000), unless --no-http: the
    dashboard at /, /health, Prometheus /metrics, the JSON API under /api
    (OpenAPI at /docs), and POST /api/runs when COINHARVEST_API_TOKEN is set.

    SIGINT/SIGTERM: no new jobs; in-flight ones get SHUTDOWN_GRACE_SECONDS
    (20) to finish and be stored; the run is marked; exit status 0. A second
    signal stops at once. Logs are plain lines, also on a terminal.

    With DATABASE_URL=postgresql+asyncpg://..., start it several times for
    replicas: one leads and runs each tick once (ticks fall on interval
    boundaries of the database clock), another takes over within about
    LEADER_CHECK_SECONDS when it dies; SHARED_LIMITS=on shares every source's
    limits among them (docs/REPLICAS.md).
    """
    from coinharvest.service.app import run_service

    settings = _settings()
    _check_shared_limits(settings)
    code = _run(
        run_service(settings, coins_file=coins_file, http=not no_http, host=host, port=port)
    )
    raise typer.Exit(code)


def serve(
    coins_file: ServeCoinsOption = None,
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """Serve the HTTP API and dashboard over the existing database; collects nothing.

    Read-only, so it can serve beside the collecting service on the same database.
    HTTP on HTTP_HOST:HTTP_PORT (127.0.0.1:8000): the dashboard at /, /health (200
    while the database is reachable), Prometheus /metrics and the JSON API under /api
    (OpenAPI at /docs). Stops on SIGINT/SIGTERM.
    """
    from coinharvest.service.app import serve_api

    settings = _settings()
    raise typer.Exit(_run(serve_api(settings, coins_file=coins_file, host=host, port=port)))


def _check_shared_limits(settings: Settings) -> None:
    """``SHARED_LIMITS=on`` without PostgreSQL: one line, exit status 2, before anything."""
    from coinharvest.engine.shared_limits import check_shared_limits_url
    from coinharvest.storage.database import database_url

    try:
        check_shared_limits_url(settings.shared_limits, database_url(settings))
    except ConfigError as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None


def _settings() -> Settings:
    return settings_and_logging()


def _run(work: Coroutine[Any, Any, int]) -> int:
    """Run `work`; configuration and database errors: one line, exit status 2."""
    try:
        return run_async(work)
    except (ConfigError, StoreError) as exc:
        print_error(str(exc))
        return 2
