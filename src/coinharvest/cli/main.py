"""The `coinharvest` command line (Typer). Thin: parse, call the library, render, exit.

Exit statuses: 0 all coins ok; 1 some failed or were deferred; 2 none ok, or bad
configuration / input (one line on stderr, no traceback).
"""

from __future__ import annotations

import functools
import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from coinharvest.cli import helpformat
from coinharvest.cli.collect_output import Output, OutputOption
from coinharvest.cli.console import err, out, print_error
from coinharvest.cli.lazy import lazy_command
from coinharvest.cli.lazy import run as run_async
from coinharvest.cli.startup import settings_and_logging
from coinharvest.errors import ConfigError, OutputError, StoreError

if TYPE_CHECKING:
    from coinharvest.collect import SinkDecorator
    from coinharvest.config import Settings
    from coinharvest.models import Coin, RunSummary

__all__ = ["app", "main"]

helpformat.install()
app = typer.Typer(
    name="coinharvest",
    help=(
        "Collect crypto coin metrics from rate-limited APIs, concurrently, "
        "without breaking any source's limits."
    ),
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        show_version()
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Collect crypto coin metrics from rate-limited APIs, concurrently, without breaking
    any source's limits."""


CoinsOption = Annotated[
    Path | None,
    typer.Option(
        "--coins",
        help="Coins file (TOML). Default: $COINS_FILE, else the 11 packaged coins.",
        dir_okay=False,
    ),
]


def _settings() -> Settings:
    return settings_and_logging()


def _setup_logging() -> None:
    """Logging as the settings say, without `_settings`' deprecation warnings."""
    settings_and_logging(warn=False)


def _coins(settings: Settings, path: Path | None) -> list[Coin]:
    """The coins to collect; plug-in source names are valid in the coins file."""
    from coinharvest.coins import load_coins
    from coinharvest.sources.registry import available_sources

    return load_coins(path or settings.coins_file, known_sources=available_sources(settings))


def _exit_code(summary: RunSummary) -> int:
    from coinharvest.models import RunStatus

    if summary.status is RunStatus.COMPLETED:
        return 0
    return 2 if summary.coins_ok == 0 else 1


def _progress(settings: Settings) -> SinkDecorator | None:
    """A progress bar on stderr when stdout is a terminal, else nothing (log lines).

    Not with ``LOG_FORMAT=json``: Rich's live display reprints stderr lines wrapped at the
    terminal's width, which would split JSON records.
    """
    if not out.is_terminal or settings.log_format == "json":
        return None
    from coinharvest.cli.progress import progress_bar

    return functools.partial(progress_bar, console=err)


@app.command()
def collect(coins_file: CoinsOption = None, output: OutputOption = Output.TABLE) -> None:
    """Run one collection now: every enabled coin from its sources, then a summary table.

    Shows a progress bar on a terminal and plain log lines otherwise. Exit status 0 when
    every coin succeeded, 1 when some failed or were deferred, 2 when none succeeded.
    With --output influx, stdout carries only InfluxDB line protocol, each coin's values
    as it completes (for Telegraf); the summary table goes to stderr.
    """
    from coinharvest.cli.collect_output import console_for, decorator, stored_in
    from coinharvest.collect import collect_once

    settings = _settings()
    coins = _coins(settings, coins_file)
    decorate = decorator(output, functools.partial(_progress, settings))
    summary = run_async(collect_once(settings, coins, decorate=decorate))
    console = console_for(output)
    console.print(_summary_table(summary))
    console.print(stored_in(settings), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(_exit_code(summary))


@app.command()
def demo(coins_file: CoinsOption = None, output: OutputOption = Output.TABLE) -> None:
    """Collect once against the built-in emulator: no internet, no configuration needed.

    Starts the upstream emulator (CoinGecko, 3xpl, Blockchair, NearBlocks, Nano RPC with
    their real limits) on a free loopback port, points every source at it, runs one
    collection of the coins through the real engine and prints the summary table
    (--output influx: as `collect --output influx`).
    """
    from coinharvest.cli.collect_output import console_for, decorator, stored_in
    from coinharvest.demo import run_demo

    settings = _settings()
    coins = _coins(settings, coins_file)
    decorate = decorator(output, functools.partial(_progress, settings))
    result = run_async(run_demo(settings, coins, decorate=decorate))
    console = console_for(output)
    console.print(_summary_table(result.summary))
    console.print(stored_in(settings), markup=False, highlight=False, soft_wrap=True)
    per_upstream = ", ".join(
        f"{name} {n}"
        for name in ("coingecko", "3xpl", "blockchair", "nearblocks", "nano")
        if (n := result.requests_to(name))
    )
    console.print(
        f"emulator: {per_upstream} requests; {result.violations} limit violations, "
        f"{result.rate_limited} rate-limited answers"
    )
    raise typer.Exit(_exit_code(result.summary))


@app.command("sources")
def list_sources(coins_file: CoinsOption = None) -> None:
    """List every source with its effective limits, batch size, base URL and key status.

    Values come from the built-in defaults and <SRC>_* settings; API keys are never shown.
    The second table (also `limits show`): the in-flight limit and rate each source starts its
    next run from (learned, stored in the database / the ceiling), the rate the upstream
    refused at, quota use today and this month, and what the schedule would use of each quota.
    """
    from coinharvest.cli.limits_commands import limits_renderable
    from coinharvest.cli.render import sources_table
    from coinharvest.config import load_settings
    from coinharvest.sources.base import close_sources
    from coinharvest.sources.registry import build_sources, effective_batch_sizes, effective_limits

    settings = load_settings()
    sources = build_sources(settings)
    keys = {name: settings.source(name).api_key is not None for name in sources}
    try:
        table = sources_table(
            sources,
            effective_limits(settings, sources),
            effective_batch_sizes(settings, sources),
            keys,
            width=out.width,
        )
        out.print(table)
        out.print(limits_renderable(settings, sources, coins_file))
    finally:
        run_async(close_sources(sources.values()))


@app.command()
def verify(
    time_scale: Annotated[
        float,
        typer.Option(
            "--time-scale",
            min=0.0001,
            max=10.0,
            help="Multiply every simulated latency and delay (0.05 finishes in a few seconds; "
            "0.0001 to 10).",
        ),
    ] = 1.0,
    n_coins: Annotated[
        int | None,
        typer.Option(
            "--coins",
            min=1,
            max=1000,
            help="Simulate N coins (1 to 1000) with latencies drawn from the seed's range "
            "instead of its 11.",
        ),
    ] = None,
) -> None:
    """Reproduce the seed's verification through the real engine on simulated sources.

    Three runs over the same coins: sequential (MAX_COLLECTION_CONCURRENCY=1 with a 5000 ms
    delay after each coin, the old collector), then max 3, then max 5. At full scale the
    sequential run takes about 70 s and max 5 about 5 s (≈ 93 % faster).
    """
    from coinharvest.cli.render import verify_table
    from coinharvest.verify import verify as run_verify

    _setup_logging()
    rows = run_async(run_verify(time_scale=time_scale, n_coins=n_coins))
    out.print(verify_table(rows, time_scale))
    last = rows[-1]
    out.print(
        f"max {last.case.max_concurrency} is {last.faster_pct:.1f} % faster than sequential "
        f"({last.summary.duration_s:.2f} s vs {rows[0].summary.duration_s:.2f} s)"
    )


@app.command("coins")
def list_coins(coins_file: CoinsOption = None) -> None:
    """List the configured coins with their priorities, ids and fallback chains."""
    from coinharvest.cli.render import coins_table
    from coinharvest.config import load_settings

    settings = load_settings()
    out.print(coins_table(_coins(settings, coins_file)))


@app.command("version")
def show_version() -> None:
    """Print the version."""
    from coinharvest import __version__

    out.print(f"coinharvest {__version__}")


def _summary_table(summary: RunSummary) -> object:
    from coinharvest.cli.render import summary_table

    return summary_table(summary, width=out.width)


#: The line `coinharvest --help` shows for ``emulator``: the first line of the docstring of
#: `coinharvest.emulator.command.emulator` (tests/cli/test_startup.py keeps them equal).
EMULATOR_SUMMARY = (
    "Serve emulated CoinGecko, 3xpl, Blockchair, NearBlocks and Nano RPC APIs on one port."
)


def _register_commands() -> None:
    from coinharvest.cli.limits_commands import register as register_limits
    from coinharvest.cli.service_commands import register as register_service
    from coinharvest.cli.storage_commands import register as register_storage

    register_service(app)
    register_storage(app)
    register_limits(app)
    # The emulator's module imports uvicorn, httpx and orjson: loaded only when it runs.
    lazy_command(
        app,
        "emulator",
        "coinharvest.emulator.command:emulator",
        summary=EMULATOR_SUMMARY,
    )


_register_commands()


#: Allocations between young-generation garbage collections in a coinharvest process
#: (Python's default: 700). A 10,000-coin run allocates millions of objects that live until
#: it ends; collecting every 700 cost ~20 µs of CPU per job (bench/scheduler_cpu.py
#: --no-gc). Cycles are still collected, in larger batches.
GC_YOUNG_THRESHOLD = 50_000


def main() -> None:
    """Entry point: run the app; configuration errors become one line and exit status 2."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    if sys.argv[1:] in (["version"], ["--version"], ["-V"]):
        # Typer runs even an unused --help through pydantic (~0.1 s with typer 0.29): the
        # bare `version` skips the parser. `version --help` and the rest still use Typer.
        show_version()
        return
    try:
        app()
    except (ConfigError, OutputError, StoreError) as exc:
        print_error(str(exc))
        sys.exit(2)
