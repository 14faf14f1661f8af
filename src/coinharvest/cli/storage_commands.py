"""The storage commands of the CLI: ``runs``, ``runs show``, ``latest``, ``history``,
``export`` and ``db upgrade``. `register(app)` adds them all to a Typer app.

``runs`` is a sub-app: without a sub-command it lists runs (``runs --limit 5``), and
``runs show ID`` shows one (a unique prefix of the id is enough).

Every command reads the configured database (``DATABASE_URL``, else ``COINHARVEST_DB``,
default ``./coinharvest.db`` in the current directory), migrating it first. The read-only
commands never create it: without the SQLite file they print one line naming its absolute
path and exit with status 2 (``db upgrade`` creates it). A bad setting, an unreachable or
read-only database prints ONE line on stderr and exits with status 2. ``--json`` prints
machine-readable JSON on stdout.
Heavy imports (SQLAlchemy) happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import csv
import json as jsonlib
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from coinharvest.cli.console import err, out, print_error
from coinharvest.cli.db_commands import prune as db_prune
from coinharvest.cli.lazy import run as run_async
from coinharvest.errors import ConfigError, StoreError
from coinharvest.timeparse import parse_since

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from coinharvest.config import Settings
    from coinharvest.storage.queries import RunDetail

__all__ = ["db_app", "export", "history", "latest", "register", "runs_app"]

T = TypeVar("T")
#: Most runs `runs --limit` lists: a bigger number is a usage error, not an overflow.
MAX_RUNS = 10_000

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Only since this UTC date/time (2026-11-01, 2026-11-01T10:00) or age (7d, 12h, 30m).",
    ),
]

CoinsOption = Annotated[
    Path | None,
    typer.Option(
        "--coins",
        help="Coins file (TOML) giving the coin order. Default: $COINS_FILE, else the "
        "11 packaged coins.",
        dir_okay=False,
    ),
]
#: Said by every command that reads the database (and by the README's settings table).
DB_HELP = (
    "[bold]Database:[/] DATABASE_URL, else the SQLite file COINHARVEST_DB, default "
    "[bold]./coinharvest.db in the current directory[/]. Never created here: "
    "run `coinharvest collect` (or `run`) first."
)

runs_app = typer.Typer(
    help="Recorded runs: without a sub-command, list the newest; `runs show ID` for one.",
    invoke_without_command=True,
    no_args_is_help=False,
    epilog=DB_HELP,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


class ExportFormat(StrEnum):
    """Formats of `export`."""

    CSV = "csv"
    JSON = "json"
    INFLUX = "influx"  # InfluxDB line protocol (coinharvest.influx)


def register(app: typer.Typer) -> None:
    """Add ``runs`` (+ ``runs show``), ``latest``, ``history``, ``export``, ``db upgrade``."""
    app.add_typer(runs_app, name="runs")
    app.command("latest", epilog=DB_HELP)(latest)
    app.command("history", epilog=DB_HELP)(history)
    app.command("export", epilog=DB_HELP)(export)
    app.add_typer(db_app, name="db")


# --------------------------------------------------------------------------- commands


@runs_app.callback()
def runs(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=MAX_RUNS, help="How many runs (1-10000).")
    ] = 20,
    json: JsonOption = False,
) -> None:
    """List the newest runs: status, duration, coins ok/failed/deferred/not stored."""
    if ctx.invoked_subcommand is not None:
        return
    from coinharvest.cli import render
    from coinharvest.storage import queries

    rows = _with_db(lambda db: queries.list_runs(db, limit=limit))
    _emit([r.as_dict() for r in rows] if json else render.runs_table(rows, out.width), json)


@runs_app.command("show", epilog=DB_HELP)
def show_run(
    run_id: Annotated[str, typer.Argument(help="Run id, or a unique prefix of it.")],
    coins_file: CoinsOption = None,
    json: JsonOption = False,
) -> None:
    """One run: per-coin results and errors, and the per-source request timeline.

    Coins are listed in coin order (priority, then the coins file's order, as `collect`
    prints them); coins no longer in the file come last.
    """
    from coinharvest.cli import render
    from coinharvest.storage import queries

    detail = _with_db(lambda db: queries.run_detail(db, run_id))
    if detail is None:
        _fail(f"no run {run_id!r} (or the prefix matches several runs)")
    detail = _in_coin_order(detail, coins_file)
    _emit(detail.as_dict() if json else render.run_detail_view(detail, out.width), json)


def latest(
    symbols: Annotated[
        list[str] | None, typer.Argument(help="Coins to show (default: every coin).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """The latest value of every metric per coin, with its source, confidence and age."""
    from coinharvest.cli import render
    from coinharvest.storage import queries

    rows = _with_db(lambda db: queries.latest_values(db, symbols or ()))
    _emit([r.as_dict() for r in rows] if json else render.latest_table(rows, out.width), json)


def history(
    symbol: Annotated[str, typer.Argument(help="Coin symbol, e.g. BTC.")],
    metric: Annotated[str, typer.Option("--metric", "-m", help="Metric, e.g. price_usd.")],
    since: SinceOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=100_000, help="Show the newest N values.")
    ] = 50,
    every: Annotated[
        bool, typer.Option("--all", help="Every value since --since, streamed (any number).")
    ] = False,
    json: JsonOption = False,
) -> None:
    """The newest 50 values (--limit N) of one metric of one coin, oldest first; --all
    prints every value as it is read (lines, or a JSON array with --json)."""
    from coinharvest.cli import render
    from coinharvest.cli.history_stream import JsonArray
    from coinharvest.storage import queries

    start = _since(since)
    if every:
        count = _with_db(lambda db: _stream_history(db, symbol, metric, start, json))
    else:
        rows = _with_db(lambda db: queries.history(db, symbol, metric, since=start, newest=limit))
        count = len(rows)
        if rows and not json:
            out.print(render.history_table(symbol, metric, rows))
    if not count and (reason := _with_db(lambda db: queries.why_no_history(db, symbol, metric))):
        _fail(reason)
    if json and not every:
        array = JsonArray(sys.stdout)
        for row in rows:
            array.add(row.as_dict())
        array.close()
    elif not count:  # the coin and metric exist, nothing in the period
        _emit([] if json else render.history_table(symbol, metric, []), json)


async def _stream_history(
    db: AsyncEngine, symbol: str, metric: str, start: datetime | None, as_json: bool
) -> int:
    """Every value, written as read (`history_stream`); how many; an empty JSON array is
    written only once the caller knows the coin and metric exist (`JsonArray`)."""
    from coinharvest.cli.history_stream import JsonArray, stream_history, write_lines

    array, count = JsonArray(sys.stdout), 0
    async for point in stream_history(db, symbol, metric, start):
        if as_json:
            array.add(point.as_dict())
        else:
            write_lines(symbol, metric, [point], sys.stdout, first=count == 0)
        count += 1
    if as_json and count:
        array.close()
    return count


def export(
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="csv, json or influx.")] = (
        ExportFormat.CSV
    ),
    since: SinceOption = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write here instead of stdout.", dir_okay=False),
    ] = None,
) -> None:
    """Export every stored observation (collected since --since) as CSV, a JSON array or
    InfluxDB line protocol (see docs/OPERATIONS-influx.md)."""
    start = _since(since)
    _database_settings()  # no database: say so before creating the --out file
    with _open_out(out_file) as stream:
        count = _with_db(lambda db: _export(db, stream, fmt, start))
    if out_file is not None:
        err.print(f"exported {count} observations to {out_file}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending schema migration (also done automatically on every start)."""
    from coinharvest.storage import migrate

    revision = _with_db(migrate.current_revision, create=True)
    out.print(f"database at revision {revision} (head {migrate.head_revision()})")


db_app.command("prune", epilog=DB_HELP)(db_prune)  # cli/db_commands.py


# --------------------------------------------------------------------------- helpers


def _since(value: str | None) -> datetime | None:
    """`parse_since` for an option: an unreadable value is a usage error naming --since."""
    try:
        return parse_since(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None


def _fail(message: str) -> NoReturn:
    print_error(message)
    raise typer.Exit(2)


def _with_db(work: Callable[[AsyncEngine], Coroutine[Any, Any, T]], *, create: bool = False) -> T:
    """Run `work` on a migrated engine; config/store errors: one line, exit status 2.

    Without `create` (every read-only command), a configured SQLite file that does not exist
    is not created: one line naming its absolute path and how to fill it, exit status 2.
    """
    from coinharvest.storage.factory import reader

    settings = _database_settings(create=create)

    async def go() -> T:
        async with reader(settings) as db:
            return await work(db)

    try:
        return run_async(go())
    except (ConfigError, StoreError) as exc:
        _fail(str(exc))


def _database_settings(*, create: bool = False) -> Settings:
    """The settings; unless `create`, exit with status 2 (one line) when the configured
    SQLite file does not exist, so that reading creates nothing."""
    from coinharvest.cli.startup import missing_database
    from coinharvest.config import load_settings

    try:
        settings = load_settings()
        missing = None if create else missing_database(settings)
    except ConfigError as exc:
        _fail(str(exc))
    if missing is not None:
        _fail(_no_database(missing, settings.database_url is not None))
    return settings


def _no_database(path: Path, from_url: bool) -> str:
    """The one line of a read-only command run before any collection."""
    setting = "DATABASE_URL" if from_url else "COINHARVEST_DB"
    return (
        f"no database at {path.resolve()} ({setting}); "
        "run 'coinharvest collect' or 'coinharvest run' first"
    )


def _emit(payload: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(jsonlib.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        out.print(payload)


def _csv_cells(row: dict[str, Any]) -> dict[str, Any]:
    """A row as CSV cells: booleans as ``true``/``false`` (as in JSON), not Python's."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in row.items()}


def _in_coin_order(detail: RunDetail, coins_file: Path | None) -> RunDetail:
    """`detail` with its coins in coin order (the order `collect` uses); coins not in the
    coins file after them, as stored. An unreadable coins file keeps the stored order."""
    from dataclasses import replace

    from coinharvest.coins import load_coins
    from coinharvest.config import load_settings
    from coinharvest.sources.registry import available_sources

    try:
        settings = load_settings()
        coins = load_coins(coins_file or settings.coins_file, available_sources(settings))
    except ConfigError:
        return detail
    rank = {coin.symbol: i for i, coin in enumerate(coins)}
    ordered = sorted(detail.coins, key=lambda c: rank.get(c.symbol, len(rank)))
    return replace(detail, coins=ordered)


@contextmanager
def _open_out(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    try:
        stream = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror or exc}")
    with stream:
        yield stream


async def _export(
    db: AsyncEngine, stream: IO[str], fmt: ExportFormat, since: datetime | None
) -> int:
    from coinharvest.storage.queries import ObservationRow, export_rows

    if fmt is ExportFormat.INFLUX:  # counts values written (None, NaN are left out)
        from coinharvest.influx import write_rows

        return await write_rows(export_rows(db, since=since), stream)
    fields = list(ObservationRow.__dataclass_fields__)
    count = 0
    writer = csv.DictWriter(stream, fieldnames=fields) if fmt is ExportFormat.CSV else None
    if writer is not None:
        writer.writeheader()
    else:
        stream.write("[")
    async for row in export_rows(db, since=since):
        if writer is not None:
            writer.writerow(_csv_cells(row.as_dict()))
        else:
            stream.write(("," if count else "") + "\n  " + jsonlib.dumps(row.as_dict()))
        count += 1
    if writer is None:
        stream.write("\n]\n")
    return count
