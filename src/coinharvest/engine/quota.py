"""Request quotas per UTC day and per UTC month: a limiter dimension that never refills early.

Some plans sell requests by the day or the month (NearBlocks free: 333 a day, 10,000 a
month; CoinGecko demo: 10,000 a month, docs/upstreams.md). A `QuotaBudget` counts the
requests a source started in the current UTC day and month and refuses the next one when
either is spent. The counts are seeded at the start of every run from the database (every
request any run of any process sent is a row of ``job_events``), so they survive restarts.

**A month spread over its days.** With a monthly quota, a day may use at most its share of
what the month has left: ``ceil(left at the start of the day / days left in the month)``
(and never more than the daily quota). A schedule that would need more than the month holds
then loses a little every day, not the whole last week of the month.

`plan_usage` turns a schedule into the figure shown at start-up and by ``coinharvest
sources``: "4 coingecko requests × 24 runs × 30 days = 2,880 of 10,000/month".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from coinharvest.models import Coin

__all__ = [
    "QuotaBudget",
    "QuotaPlan",
    "WallClock",
    "day_start",
    "month_start",
    "plan_usage",
    "requests_per_run",
    "utc_now",
]

#: The wall clock (timezone-aware UTC); only periods (days, months) are read from it.
WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC (the default `WallClock`)."""
    return datetime.now(UTC)


def day_start(at: datetime) -> datetime:
    """Midnight UTC of `at`'s day."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(at: datetime) -> datetime:
    """Midnight UTC of the first day of `at`'s month."""
    return day_start(at).replace(day=1)


def _next_month(at: datetime) -> datetime:
    first = month_start(at)
    return (first + timedelta(days=32)).replace(day=1)


class QuotaBudget:
    """Requests left today and this month for one source (see the module docstring).

    :param per_day: requests per UTC day (None: no daily quota).
    :param per_month: requests per UTC month (None: no monthly quota).
    :param wall: the wall clock; tests freeze it.
    """

    def __init__(
        self,
        source: str,
        per_day: int | None,
        per_month: int | None,
        wall: WallClock = utc_now,
    ) -> None:
        self.source = source
        self.per_day = per_day
        self.per_month = per_month
        self._wall = wall
        self._day = day_start(wall())
        self.used_day = 0
        self.used_month = 0

    def __repr__(self) -> str:
        return (
            f"<QuotaBudget {self.source} day={self.used_day}/{self.allowance_today()}"
            f" month={self.used_month}/{self.per_month}>"
        )

    def seed(self, used_day: int, used_month: int) -> None:
        """Start from what the database says was used today and this month."""
        self._day = day_start(self._wall())
        self.used_day = max(0, used_day)
        self.used_month = max(self.used_day, used_month)

    def spend(self) -> None:
        """Count one request started now."""
        self._roll()
        self.used_day += 1
        self.used_month += 1

    def allowance_today(self) -> int | None:
        """How many requests today may use in all (None: unlimited)."""
        self._roll()
        share: int | None = None
        if self.per_month is not None:
            left = self.per_month - (self.used_month - self.used_day)
            days_left = (_next_month(self._day) - self._day).days
            share = max(0, math.ceil(left / days_left))
        if self.per_day is None:
            return share
        return self.per_day if share is None else min(self.per_day, share)

    def refusal(self) -> str | None:
        """Why no more requests may start now, or None if they may."""
        self._roll()
        if self.per_month is not None and self.used_month >= self.per_month:
            until = _next_month(self._day)
            return (
                f"{self.source}'s monthly quota ({self.per_month:,} requests) is spent;"
                f" it resets {until:%Y-%m-%d %H:%M} UTC"
            )
        allowance = self.allowance_today()
        if allowance is not None and self.used_day >= allowance:
            what = (
                f"daily quota ({allowance:,} requests)"
                if allowance == self.per_day
                else f"share of its monthly quota for today ({allowance:,} of"
                f" {self.per_month:,} requests)"
            )
            until = self._day + timedelta(days=1)
            return f"{self.source}'s {what} is spent; more from {until:%Y-%m-%d %H:%M} UTC"
        return None

    def _roll(self) -> None:
        """A new day (or month) began since the last look: its counts start at zero."""
        today = day_start(self._wall())
        if today == self._day:
            return
        if month_start(today) != month_start(self._day):
            self.used_month = 0
        self.used_day = 0
        self._day = today


@dataclass(frozen=True, slots=True)
class QuotaPlan:
    """What a schedule would use of a source's quotas (see `plan_usage`)."""

    source: str
    requests_per_run: int
    runs_per_day: float
    per_day: int | None
    per_month: int | None

    @property
    def daily(self) -> int:
        """Requests a day of this schedule sends."""
        return math.ceil(self.requests_per_run * self.runs_per_day)

    @property
    def monthly(self) -> int:
        """Requests 30 days of this schedule send."""
        return math.ceil(self.requests_per_run * self.runs_per_day * 30)

    @property
    def exceeds(self) -> bool:
        """Whether the schedule needs more than a quota allows."""
        over_day = self.per_day is not None and self.daily > self.per_day
        over_month = self.per_month is not None and self.monthly > self.per_month
        return over_day or over_month

    def describe(self) -> str:
        """One line, e.g. "4 coingecko requests × 24 runs × 30 days = 2,880 of 10,000/month"."""
        runs = f"{self.runs_per_day:,.4g}"
        parts = []
        if self.per_month is not None:
            parts.append(
                f"{self.requests_per_run:,} {self.source} requests × {runs} runs × 30 days"
                f" = {self.monthly:,} of {self.per_month:,}/month"
            )
        if self.per_day is not None:
            parts.append(
                f"{self.requests_per_run:,} {self.source} requests × {runs} runs"
                f" = {self.daily:,} of {self.per_day:,}/day"
            )
        return "; ".join(parts)


def plan_usage(
    source: str,
    requests_per_run: int,
    interval_minutes: float,
    per_day: int | None,
    per_month: int | None,
) -> QuotaPlan:
    """What running every `interval_minutes` would use of `source`'s quotas."""
    return QuotaPlan(source, requests_per_run, 1440.0 / interval_minutes, per_day, per_month)


def requests_per_run(coins: Iterable[Coin], batch_sizes: Mapping[str, int]) -> dict[str, int]:
    """Requests one run sends to each source when nothing fails: the coins whose chains
    start there, in batches (fallbacks and retries come on top)."""
    firsts: dict[str, set[str]] = {}
    for coin in coins:
        for chain in coin.chains:
            firsts.setdefault(chain[0], set()).add(coin.symbol)
    return {
        name: math.ceil(len(symbols) / max(1, batch_sizes.get(name, 1)))
        for name, symbols in firsts.items()
    }
