"""Learned limits and quotas as they stand, for ``coinharvest sources``, ``/api/limits``,
``/metrics`` and the dashboard; forgetting what was learned; the quota plan of a schedule.

- `build_report` / `read_report`: what the next run of an engine would start from, without
  one: the learned limits stored for each source's current API key, restored exactly as an
  engine restores them (`SourceAdaptation.restore`, clamped to the configured ceilings), and
  the quota counts of this UTC day and month (``storage/usage.py``).
- `LimitsDesk`: what ``GET /api/limits`` shows and ``DELETE /api/limits[/{source}]`` does.
  With the service's live `Engine` (``coinharvest run``) it shows the limits in force now;
  without one (``coinharvest serve``) it shows `read_report`'s picture.
- `reset_controllers`: a live engine's adaptive controllers start again from the ceilings.
  Only between runs: what a run is learning is saved at its end and would undo a reset.
- `quota_plans`: each quota's plan for a schedule (`engine.quota.plan_usage`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.config import Settings
from coinharvest.engine import Engine
from coinharvest.engine.adaptive import LimitView, SourceAdaptation, key_id, limit_view
from coinharvest.engine.limiter import SourceLimiter
from coinharvest.engine.quota import (
    QuotaBudget,
    QuotaPlan,
    WallClock,
    day_start,
    month_start,
    plan_usage,
    requests_per_run,
    utc_now,
)
from coinharvest.logs import get_logger
from coinharvest.models import Coin, LearnedLimit, SourceLimits
from coinharvest.sources.base import Source
from coinharvest.storage.limits import learned_limits
from coinharvest.storage.usage import requests_since

__all__ = [
    "LimitResetter",
    "LimitsDesk",
    "LimitsReport",
    "ResetOutcome",
    "ResetRefused",
    "build_report",
    "desk_from_settings",
    "key_ids",
    "quota_plans",
    "read_report",
    "reset_controllers",
]

#: Requests counted today and this month, per source.
Counts = tuple[Mapping[str, int], Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class LimitsReport:
    """Each source's limits (`views`), with what the database said.

    :ivar learned: per source, the learned limit stored for its current API key.
    :ivar stored: learned limits stored in all (any source, any key).
    :ivar counted: whether the quota counts were read (else the views' ``quota_used_*``
        are None: unknown).
    """

    views: list[LimitView]
    learned: dict[str, LearnedLimit]
    stored: int
    counted: bool


def build_report(
    limits: Mapping[str, SourceLimits],
    key_ids: Mapping[str, str],
    *,
    adaptive: bool,
    learned: Sequence[LearnedLimit] = (),
    used: Counts | None = None,
    now: datetime | None = None,
) -> LimitsReport:
    """What an engine over `limits` would start its next run from (module docstring).

    :param key_ids: each source's `key_id` (a learned limit of another key is not used).
    :param used: requests counted today and this month (None: unknown).
    :param now: the wall-clock time (UTC days and months, and the learned limits' ages).
    """
    at = now or utc_now()
    mine = {r.source: r for r in learned if r.key_id == key_ids.get(r.source, "")}
    key = key_ids.get
    views = [
        _view(name, lim, key(name, "") if adaptive else None, mine.get(name), at, used)
        for name, lim in limits.items()
    ]
    kept = {n: r for n, r in mine.items() if n in limits}
    return LimitsReport(views, kept, len(learned), used is not None)


def _view(  # key: None when ADAPTIVE_LIMITS=off
    name: str,
    limits: SourceLimits,
    key: str | None,
    learned: LearnedLimit | None,
    now: datetime,
    used: Counts | None,
) -> LimitView:
    quota = None
    if limits.quota_per_day is not None or limits.quota_per_month is not None:
        quota = QuotaBudget(name, limits.quota_per_day, limits.quota_per_month, lambda: now)
        if used is not None:
            quota.seed(used[0].get(name, 0), used[1].get(name, 0))
    tick = time.monotonic()
    limiter = SourceLimiter(name, limits, lambda: tick, quota)
    adaptation = None if key is None else SourceAdaptation(limiter, key)
    if adaptation is not None and learned is not None:
        age_s = max(0.0, (now - learned.updated_at).total_seconds())
        with _quiet(get_logger("limiter")):  # "pacing … learned earlier" is for real runs
            adaptation.restore(learned, age_s, tick)
    view = limit_view(limiter, adaptation)
    if used is None and quota is not None:
        view = dataclasses.replace(view, quota_used_day=None, quota_used_month=None)
    return view


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """`logger` says nothing inside (synchronous code only: no other task runs meanwhile)."""
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before


async def read_report(
    db: AsyncEngine,
    limits: Mapping[str, SourceLimits],
    key_ids: Mapping[str, str],
    *,
    adaptive: bool,
    now: datetime | None = None,
) -> LimitsReport:
    """`build_report` with the learned limits and quota counts read from `db`.

    :raises StoreError: the database could not be read (one line).
    """
    at = now or utc_now()
    learned = await learned_limits(db)
    used = (await requests_since(db, day_start(at)), await requests_since(db, month_start(at)))
    return build_report(limits, key_ids, adaptive=adaptive, learned=learned, used=used, now=at)


def quota_plans(
    limits: Mapping[str, SourceLimits],
    batch_sizes: Mapping[str, int],
    coins: Iterable[Coin],
    interval_minutes: float,
) -> list[QuotaPlan]:
    """The plan of every source with a quota, for a run of `coins` every `interval_minutes`
    (requests of a run where nothing fails: fallbacks and retries come on top)."""
    per_run = requests_per_run(coins, batch_sizes)
    return [
        plan_usage(
            name, per_run.get(name, 0), interval_minutes, lim.quota_per_day, lim.quota_per_month
        )
        for name, lim in limits.items()
        if lim.quota_per_day is not None or lim.quota_per_month is not None
    ]


def reset_controllers(engine: Engine, source: str | None = None) -> list[str]:
    """Give `source`'s (None: every source's) adaptive controllers a fresh start at the
    configured limits, in `engine` itself; the sources reset (none: ADAPTIVE_LIMITS=off).

    Call it between runs only (`Engine.running` False): a request in flight would report
    to the controllers it started under.
    """
    names = [n for n in engine.adaptations if source in (None, n)]
    for name in names:
        old = engine.adaptations[name]
        fresh = SourceAdaptation(
            old.limiter, old.key_id, concurrency=old.concurrency.tuning, rate=old.rate.tuning
        )
        engine.adaptations[name] = fresh  # the engine's memory saves this one after a run
        old.limiter.adapt(fresh.concurrency.cap, fresh.rate.spacing_s())
    return names


class LimitResetter(Protocol):
    """Deletes learned limits (the `Store`)."""

    async def reset_learned_limits(self, source: str | None = None) -> int:
        """Forget `source`'s learned limits (every key), or all; the rows deleted."""
        ...


class ResetRefused(Exception):
    """Learned limits cannot be reset now (a run is going)."""


@dataclass(frozen=True, slots=True)
class ResetOutcome:
    """What a reset did: rows deleted, and whether the live engine started afresh too."""

    source: str | None
    forgotten: int
    engine_reset: bool
    message: str


class LimitsDesk:
    """Learned limits and quotas of a service (see the module docstring).

    :param db: the database (learned limits and quota counts, without an engine).
    :param limits / key_ids: each source's configured limits and `key_id`.
    :param adaptive: ``ADAPTIVE_LIMITS``.
    :param engine: the live engine of ``coinharvest run`` (None: ``serve``).
    :param resetter: deletes learned limits (the `Store`; None: resetting is not offered).
    """

    def __init__(
        self,
        db: AsyncEngine,
        limits: Mapping[str, SourceLimits],
        key_ids: Mapping[str, str],
        *,
        adaptive: bool,
        engine: Engine | None = None,
        resetter: LimitResetter | None = None,
        wall: WallClock = utc_now,
    ) -> None:
        self.db = db
        self.limits = dict(limits)
        self.key_ids = dict(key_ids)
        self.adaptive = adaptive
        self.engine = engine
        self.resetter = resetter
        self._wall = wall

    @property
    def sources(self) -> list[str]:
        """The sources shown, in order."""
        return list(self.limits)

    async def views(self) -> list[LimitView]:
        """The live engine's limits in force, else what its next run would start from."""
        if self.engine is not None:
            return self.engine.limit_views()
        report = await read_report(
            self.db, self.limits, self.key_ids, adaptive=self.adaptive, now=self._wall()
        )
        return report.views

    async def reset(self, source: str | None) -> ResetOutcome:
        """Forget what was learned of `source` (None: of every source).

        :raises KeyError: `source` is not one of `sources`.
        :raises ResetRefused: a run is going on the live engine, or no `resetter`.
        :raises StoreError: the database could not be written.
        """
        if source is not None and source not in self.limits:
            raise KeyError(source)
        if self.resetter is None:
            raise ResetRefused("resetting learned limits is not offered here")
        engine = self.engine
        if engine is not None and engine.running:
            raise ResetRefused(
                "a collection run is going and would save what it learned at its end; "
                "reset after it ends"
            )
        reset = reset_controllers(engine, source) if engine is not None else []
        forgotten = await self.resetter.reset_learned_limits(source)
        return ResetOutcome(source, forgotten, bool(reset), self._message(source, forgotten))

    def _message(self, source: str | None, forgotten: int) -> str:
        what = f"{forgotten} learned limit{'' if forgotten == 1 else 's'}"
        of = f" of {source}" if source else ""
        if self.engine is None:
            return (
                f"forgot {what}{of} in the database; a `coinharvest run` using it keeps what "
                "it learned in memory and saves it again after its next run (restart it, or "
                "reset through its own API)"
            )
        if not self.adaptive:
            return f"forgot {what}{of}; ADAPTIVE_LIMITS is off: the configured limits apply"
        return (
            f"forgot {what}{of}; this service's engine starts again from the configured "
            "limits (the ceilings) and learns anew"
        )


def key_ids(settings: Settings, names: Iterable[str]) -> dict[str, str]:
    """Each source's `key_id`: which API key its learned limits are for."""
    return {name: key_id(settings.source(name).api_key) for name in names}


def desk_from_settings(
    settings: Settings,
    sources: Mapping[str, Source],
    db: AsyncEngine,
    *,
    engine: Engine | None = None,
    resetter: LimitResetter | None = None,
) -> LimitsDesk:
    """A `LimitsDesk` over `sources` with their effective limits and keys from `settings`."""
    from coinharvest.sources.registry import effective_limits

    return LimitsDesk(
        db,
        effective_limits(settings, sources),
        key_ids(settings, sources),
        adaptive=settings.adaptive_limits,
        engine=engine,
        resetter=resetter,
    )
