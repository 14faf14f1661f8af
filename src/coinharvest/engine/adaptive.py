"""Adaptive limits of one source: outcomes in, in-flight cap and spacing out, inside the ceilings.

`SourceAdaptation` is what the run talks to (``ADAPTIVE_LIMITS=on``, the default). It feeds
each finished request to the source's two controllers, `ConcurrencyControl` (response
times → in-flight limit) and `RateControl` (429s and rate-limit headers → start rate), and
sets their decisions on the source's `SourceLimiter` with ``adapt``, which clamps them to
the configured limits: those stay hard ceilings, whatever is learned.

What was learned is kept across runs and restarts (`learned` / `restore`, stored by the
engine's `LimitStore`), per source and API key: a new key starts again from the ceilings.
`LimitView` is the read-only picture shown by ``coinharvest sources``, ``/metrics`` and the
dashboard.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from coinharvest.engine.concurrency import ConcurrencyControl, ConcurrencyTuning
from coinharvest.engine.limiter import SourceLimiter
from coinharvest.engine.ratecontrol import RateControl, RateTuning, configured_rate
from coinharvest.errors import RateLimited, TransientError
from coinharvest.logs import get_logger
from coinharvest.models import LearnedLimit

__all__ = ["AdaptiveOptions", "LimitView", "SourceAdaptation", "key_id", "limit_view"]

log = get_logger("limiter")


def key_id(api_key: str | None) -> str:
    """A short fingerprint of an API key ("" without one): which key a learned limit is for,
    without storing the key."""
    if not api_key:
        return ""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class AdaptiveOptions:
    """How the engine adapts: which API key each source uses (`key_id`), and the
    controllers' constants (None: their defaults; tests and benchmarks change them)."""

    key_ids: Mapping[str, str] = field(default_factory=dict)
    concurrency: ConcurrencyTuning | None = None
    rate: RateTuning | None = None


class SourceAdaptation:
    """One source's adaptive controllers and its limiter (see the module docstring)."""

    def __init__(
        self,
        limiter: SourceLimiter,
        key: str = "",
        *,
        concurrency: ConcurrencyTuning | None = None,
        rate: RateTuning | None = None,
    ) -> None:
        self.limiter = limiter
        self.key_id = key
        self.concurrency = ConcurrencyControl(limiter.limits.max_concurrency, concurrency)
        self.rate = RateControl(limiter.limits, rate)

    def __repr__(self) -> str:
        return f"<SourceAdaptation {self.source} {self.concurrency!r} {self.rate!r}>"

    @property
    def source(self) -> str:
        """The source's name."""
        return self.limiter.name

    def started(self, now: float) -> int:
        """A request of this source started at `now`; returns its sample window, to give
        back to `observe` when it ends."""
        self.rate.started(now)
        return self.concurrency.sent(now)

    def observe(
        self,
        now: float,
        started_at: float,
        in_flight: int,
        outcome: object,
        window: int,
        client_lag: float = 0.0,
    ) -> None:
        """A request sent at `started_at` (with `in_flight` out, in sample `window`) ended
        at `now` with `outcome`: an answer, or the `SourceError` that ended it.

        `client_lag`: how late this process's own loop is running callbacks
        (engine/looplag.py); taken off the response time, which measures the upstream, but
        never more than half of it: the estimate is a moving mean that can overshoot (a
        stall, the answer's own processing), and a response time cut to ~0 would hide real
        queueing or record a no-load time of 0 (then every request reads as queued).
        """
        if not isinstance(outcome, BaseException):
            rtt = now - started_at
            rtt -= min(client_lag, 0.5 * rtt)
            self.concurrency.answered(now, rtt, in_flight, window)
            self.rate.answered(now)
            self._apply(now, "after quiet answers")
            return
        self.concurrency.ended(now, window)
        if isinstance(outcome, RateLimited):
            self.rate_limited(now, started_at)
        elif isinstance(outcome, TransientError) and not outcome.unreachable:
            self.dropped(now, started_at)  # a timeout or a 5xx: the server strains
        else:
            self._apply(now, "after a failed request")

    def dropped(self, now: float, started_at: float) -> None:
        """A request sent at `started_at` timed out or got a 5xx."""
        self.concurrency.dropped(now, started_at)
        self._apply(now, "after a timeout or server error")

    def rate_limited(self, now: float, started_at: float) -> None:
        """A request sent at `started_at` was refused with a 429."""
        self.rate.rate_limited(now, started_at)
        self._apply(now, "after a 429")

    def announced(self, now: float, limit: float | None) -> None:
        """An answer carried ``x-ratelimit-limit: limit`` (``remaining`` and ``reset`` are not
        paced over: engine/ratecontrol.py says why)."""
        self.rate.announce(now, limit)
        self._apply(now, "from the upstream's rate-limit headers")

    def learned(self, at: datetime) -> LearnedLimit:
        """What to keep for the next run (`at`: the wall-clock time of saving)."""
        rate = self.rate.rate
        return LearnedLimit(
            source=self.source,
            key_id=self.key_id,
            concurrency=self.concurrency.limit,
            rate_per_minute=rate if math.isfinite(rate) else 0.0,
            ceiling_per_minute=self.rate.ceiling,
            updated_at=at,
        )

    def restore(self, learned: LearnedLimit, age_s: float, now: float) -> None:
        """Start from `learned`, saved `age_s` seconds ago (ignored if for another key)."""
        if learned.key_id != self.key_id:
            return
        self.concurrency.limit = min(float(self.concurrency.ceiling), max(1.0, learned.concurrency))
        self.rate.restore(learned.rate_per_minute, learned.ceiling_per_minute, age_s, now)
        self._apply(now, "learned earlier")

    def _apply(self, now: float, why: str) -> None:
        lim = self.limiter
        before_cap, before_spacing = lim.cap, lim.spacing_s
        lim.adapt(self.concurrency.cap, self.rate.spacing_s())
        if lim.spacing_s != before_spacing:
            log.info(
                "%s: pacing %s (configured %s) %s",
                self.source,
                _per_minute(lim.spacing_s),
                _per_minute(lim.limits.min_interval_s),
                why,
            )
        if lim.cap != before_cap:
            log.debug(
                "%s: in-flight limit %d -> %d (ceiling %d) %s",
                self.source,
                before_cap,
                lim.cap,
                lim.limits.max_concurrency,
                why,
            )


def _per_minute(spacing_s: float) -> str:
    return "unpaced" if spacing_s <= 0 else f"{60.0 / spacing_s:,.3g}/min"


@dataclass(frozen=True, slots=True)
class LimitView:
    """A source's limits as they stand (for ``sources``, ``/metrics`` and the dashboard).

    :ivar concurrency / max_concurrency: the in-flight limit in force, and its ceiling.
    :ivar rate_per_minute / max_rate_per_minute: the start rate in force and its ceiling
        (``inf``: not rate limited).
    :ivar ceiling_per_minute: the rate at which the upstream last refused us, or that its
        headers announced (None: never).
    :ivar adaptive: whether the controllers run (``ADAPTIVE_LIMITS``).
    :ivar quota_used_day / quota_used_month / quota_today / quota_per_month: quota counts,
        today's allowance and the monthly quota (None: no quota).
    """

    source: str
    concurrency: int
    max_concurrency: int
    rate_per_minute: float
    max_rate_per_minute: float
    ceiling_per_minute: float | None
    adaptive: bool
    quota_used_day: int | None = None
    quota_used_month: int | None = None
    quota_today: int | None = None
    quota_per_month: int | None = None


def limit_view(limiter: SourceLimiter, adaptation: SourceAdaptation | None) -> LimitView:
    """The picture of `limiter`'s limits now (see `LimitView`)."""
    configured = configured_rate(limiter.limits)
    rate = configured if limiter.spacing_s <= 0 else min(configured, 60.0 / limiter.spacing_s)
    quota = limiter.quota
    return LimitView(
        source=limiter.name,
        concurrency=limiter.cap,
        max_concurrency=limiter.limits.max_concurrency,
        rate_per_minute=rate,
        max_rate_per_minute=configured,
        ceiling_per_minute=None if adaptation is None else adaptation.rate.ceiling,
        adaptive=adaptation is not None,
        quota_used_day=None if quota is None else quota.used_day,
        quota_used_month=None if quota is None else quota.used_month,
        quota_today=None if quota is None else quota.allowance_today(),
        quota_per_month=None if quota is None else quota.per_month,
    )
