"""``coinharvest db prune``: delete data older than an age now (what RETENTION_DAYS does after
every run), with ``--dry-run`` to count first. Registered on ``db_app`` by `storage_commands`.

The rules are `coinharvest.storage.retention`'s: observations, coin results and job events
older than the age go, in batches of 10,000 rows per transaction; the newest value of each
coin and metric stays; job events stay at least 32 days (quotas); runs stay.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from coinharvest.cli.console import out

__all__ = ["parse_age", "prune"]

AGE_HELP = "an age: digits and w, d, h or m (weeks, days, hours, minutes), e.g. 90d, 2w, 12h"
_AGE = re.compile(r"\s*(\d{1,6}(?:\.\d{1,6})?)\s*([wdhm])\s*")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}
#: Ages above this (~270 years) reach before year 1 from some dates: refused.
_MAX_AGE = timedelta(days=100_000)


def parse_age(value: str) -> timedelta:
    """``90d`` → 90 days (``w``, ``d``, ``h``, ``m``); at least one minute.

    :raises typer.BadParameter: anything else, naming ``--older-than``.
    """
    match = _AGE.fullmatch(value)
    age = timedelta(**{_UNITS[match[2]]: float(match[1])}) if match else None
    if age is None or not timedelta(minutes=1) <= age <= _MAX_AGE:
        raise typer.BadParameter(
            f"{value!r} is invalid: use {AGE_HELP} (1m to 100000d)", param_hint="--older-than"
        )
    return age


def prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help=f"Delete what is older than this: {AGE_HELP}.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete observations, coin results and job events older than an age, in batches.

    The newest value of every coin and metric is kept however old (``latest`` still shows
    it); job events stay at least 32 days (quotas count them); runs are kept.
    """
    from coinharvest.cli.storage_commands import _with_db
    from coinharvest.storage.retention import prune as prune_rows

    cutoff = datetime.now(UTC) - parse_age(older_than)
    pruned = _with_db(lambda db: prune_rows(db, cutoff, dry_run=dry_run))
    verb = "would delete" if dry_run else "deleted"
    out.print(
        f"{verb} {pruned.observations} observations, {pruned.coin_results} coin results, "
        f"{pruned.job_events} job events older than {cutoff:%Y-%m-%d %H:%M} UTC ({older_than})",
        highlight=False,
        soft_wrap=True,
    )
