"""The ``limits`` commands: what the adaptive limits learned and how much of each quota is
used (``limits show``, also the second table of ``coinharvest sources``), and forgetting what
was learned (``limits reset SOURCE`` or ``limits reset --all``). `register(app)` adds them.

Reading never creates the database: without the SQLite file, learned limits and quota use
show as "–" and the caption says why. ``reset`` deletes rows through the `Store`; a
``coinharvest run`` service keeps what it learned in memory and saves it again after its next
run, so the command says to restart it or to reset through its API (``DELETE /api/limits``).
Heavy imports happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from coinharvest.cli.console import out, print_error
from coinharvest.cli.lazy import run as run_async
from coinharvest.cli.startup import missing_database
from coinharvest.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from coinharvest.config import Settings
    from coinharvest.models import SourceLimits
    from coinharvest.service.limits import LimitsReport
    from coinharvest.sources.base import Source

__all__ = ["limits_app", "limits_renderable", "register"]

limits_app = typer.Typer(
    help="Learned limits and quotas: `limits show`, `limits reset SOURCE` / `--all`.",
    no_args_is_help=True,
)

CoinsOption = Annotated[
    Path | None,
    typer.Option(
        "--coins",
        help="Coins file (TOML) for the quota plan. Default: $COINS_FILE, else the 11 "
        "packaged coins.",
        dir_okay=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``limits show`` and ``limits reset`` to `app`."""
    app.add_typer(limits_app, name="limits")


@limits_app.command("show")
def show(coins_file: CoinsOption = None) -> None:
    """Show learned limits, quota use and each quota's plan.

    Per source: the in-flight limit and the rate per minute its next run starts from
    (learned / ceiling), the rate the upstream last refused, requests today and this month
    against the quota; then what the schedule would use of each quota.
    """
    from coinharvest.config import load_settings
    from coinharvest.sources.base import close_sources
    from coinharvest.sources.registry import build_sources

    settings = load_settings()
    sources = build_sources(settings)
    try:
        out.print(limits_renderable(settings, sources, coins_file))
    finally:
        run_async(close_sources(sources.values()))


@limits_app.command("reset")
def reset(
    source: Annotated[
        str | None, typer.Argument(help="The source to forget, e.g. coingecko.", metavar="SOURCE")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Forget every source's.")] = False,
) -> None:
    """Forget learned limits of a SOURCE, or --all.

    Deletes them from the database, under every API key: the next run starts again from the
    configured limits (the ceilings). A `coinharvest run` already going keeps what it learned
    in memory: restart it, or reset through its API (DELETE /api/limits/SOURCE).
    """
    if (source is None) == (not every):
        _fail("give a SOURCE or --all (exactly one)")
    from coinharvest.config import load_settings

    settings = load_settings()
    if source is not None:
        _check_source(settings, source)
    missing = missing_database(settings)
    if missing is not None:
        out.print(f"nothing to forget: no database at {missing}", soft_wrap=True)
        return
    try:
        forgotten = run_async(_reset(settings, source))
    except (ConfigError, StoreError) as exc:
        _fail(str(exc))
    what = f"of {source}" if source else "of every source"
    out.print(
        f"forgot {forgotten} learned limit{'' if forgotten == 1 else 's'} {what}; "
        "the next run starts from the configured limits",
        soft_wrap=True,
    )
    out.print(
        "[dim]a `coinharvest run` already going keeps what it learned and saves it again "
        "after its next run: restart it, or reset through its API (DELETE /api/limits)[/]"
    )


def limits_renderable(
    settings: Settings, sources: Mapping[str, Source], coins_file: Path | None
) -> RenderableType:
    """The "Adaptive limits and quotas" table with the quota plans (`render_limits`)."""
    from coinharvest.cli.render_limits import limits_view
    from coinharvest.coins import load_coins
    from coinharvest.engine.quota import utc_now
    from coinharvest.service.limits import key_ids, quota_plans
    from coinharvest.sources.registry import (
        available_sources,
        effective_batch_sizes,
        effective_limits,
    )

    coins = load_coins(coins_file or settings.coins_file, known_sources=available_sources(settings))
    limits = effective_limits(settings, sources)
    now = utc_now()
    report, note = _report(settings, limits, key_ids(settings, sources), now)
    usable = {name: limits[name] for name, src in sources.items() if not src.unavailable()}
    sizes = effective_batch_sizes(settings, sources)
    plans = quota_plans(usable, sizes, coins, settings.collection_interval_minutes)
    return limits_view(report, plans, adaptive=settings.adaptive_limits, now=now, db_note=note)


def _report(
    settings: Settings, limits: Mapping[str, SourceLimits], keys: Mapping[str, str], now: datetime
) -> tuple[LimitsReport, str | None]:
    """The report from the database, or without it and the reason why (then "–")."""
    from coinharvest.service.limits import build_report, read_report
    from coinharvest.storage.factory import reader

    adaptive = settings.adaptive_limits

    async def read() -> LimitsReport:
        async with reader(settings) as db:
            return await read_report(db, limits, keys, adaptive=adaptive, now=now)

    try:
        missing = missing_database(settings)
        if missing is None:
            return run_async(read()), None
        note = (
            f"No database at {missing} yet (not created): nothing learned, every source "
            "starts at its ceilings; quota use unknown (–)."
        )
    except (ConfigError, StoreError) as exc:
        note = f"Database not read ({exc}): learned limits and quota use unknown (–)."
    return build_report(limits, keys, adaptive=adaptive, now=now), note


def _check_source(settings: Settings, source: str) -> None:
    """Exit with status 2 when `source` is no source's name."""
    from coinharvest.sources.registry import available_sources

    known = available_sources(settings)
    if source not in known:
        _fail(f"unknown source {source!r} (known: {', '.join(known)})")


async def _reset(settings: Settings, source: str | None) -> int:
    from coinharvest.storage.factory import store_from_settings

    async with store_from_settings(settings) as store:
        return await store.reset_learned_limits(source)


def _fail(message: str) -> NoReturn:
    print_error(message)
    raise typer.Exit(2)
