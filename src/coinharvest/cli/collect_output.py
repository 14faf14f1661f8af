"""What `collect` and `demo` write, and where: ``--output table`` (default) or ``influx``.

- ``table``: the progress bar on a terminal, then the summary table and the line saying where
  the results were stored, on stdout.
- ``influx``: stdout carries nothing but InfluxDB line protocol, each coin's points the moment
  the coin is stored (`coinharvest.influx`), for Telegraf's ``inputs.exec``/``execd``; the
  summary table, the "stored in" line and the logs go to stderr; no progress bar.

Light on purpose (imported with the CLI): the rest is imported when a command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from coinharvest.cli.console import err, out

if TYPE_CHECKING:
    from coinharvest.collect import SinkDecorator
    from coinharvest.config import Settings

__all__ = ["Output", "OutputOption", "console_for", "decorator", "stored_in"]


class Output(StrEnum):
    """What `collect` and `demo` print on stdout."""

    TABLE = "table"
    INFLUX = "influx"


OutputOption = Annotated[
    Output,
    typer.Option(
        "--output",
        help="table: summary table on stdout. influx: only InfluxDB line protocol on stdout, "
        "each coin as it completes (for Telegraf); the summary goes to stderr.",
    ),
]


def decorator(output: Output, progress: Callable[[], SinkDecorator | None]) -> SinkDecorator | None:
    """The run's sink decorator: the line-protocol writer for ``influx``, else `progress()`."""
    if output is Output.INFLUX:
        from coinharvest.influx import influx_output

        return influx_output
    return progress()


def console_for(output: Output) -> Console:
    """Where the summary goes: stderr when stdout carries line protocol, else stdout."""
    return err if output is Output.INFLUX else out


def stored_in(settings: Settings) -> str:
    """``stored in <where>``: the SQLite file's absolute path, or the database URL with its
    password hidden (``postgresql+asyncpg://app:***@db/coins``).

    :raises ConfigError: a bad ``DATABASE_URL`` (the run would have failed on it first).
    """
    from coinharvest.storage.database import database_url, sqlite_path
    from coinharvest.storage.failures import safe_url

    url = database_url(settings)
    path = sqlite_path(url)
    return f"stored in {path.resolve() if path is not None else safe_url(url)}"
