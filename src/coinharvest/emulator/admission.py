"""Request admission: storms, per-key limits and the hidden rate decide if a request goes on.

During a storm every request gets the upstream's rate-limit rejection (counted in
``rate_limited`` only: the client did nothing wrong). Otherwise the key's
:class:`~coinharvest.emulator.limits.KeyLimiter` admits the request or it is rejected,
with each broken limit counted as a violation. A request within the configured limits
may still be over the upstream's hidden rate (``capacity.hidden_rate``): it then gets the
upstream's 429, counted as ``hidden_rejected`` (not a violation). A start is recorded only
when both admit it. A rejection that really carries a ``Retry-After`` is remembered, so
that retries sent before it expires are counted (:mod:`coinharvest.emulator.retry_after`).
"""

from __future__ import annotations

import datetime as dt
import random

from coinharvest.emulator.config import EmulatorConfig, UpstreamConfig
from coinharvest.emulator.hidden import RollingWindow
from coinharvest.emulator.http import Response
from coinharvest.emulator.limits import KeyLimiter, Rejection, ceil_seconds
from coinharvest.emulator.retry_after import RetryAfterWatch
from coinharvest.emulator.stats import Stats
from coinharvest.emulator.upstreams import UPSTREAM_CLASSES, Upstream
from coinharvest.emulator.upstreams.base import RejectionContext

__all__ = ["Admission"]


class Admission:
    """Limiter, storm and Retry-After state of all upstreams and keys (a fresh one per reset).

    :param stats: where rejections and violations are counted.
    :param rng: the emulator's seeded RNG (whether a limit rejection carries Retry-After).
    :param now: monotonic time the storms' clocks start at.
    """

    def __init__(self, stats: Stats, rng: random.Random, now: float) -> None:
        self._stats = stats
        self._rng = rng
        self._limiters: dict[tuple[str, str], KeyLimiter] = {}
        self._hidden: dict[tuple[str, str], RollingWindow] = {}
        self._retries = RetryAfterWatch(stats)
        self._storm_epoch: dict[str, float] = dict.fromkeys(UPSTREAM_CLASSES, now)

    def month_count(self, name: str, key: str) -> int:
        """Requests ``key`` made to upstream ``name`` this calendar month."""
        limiter = self._limiters.get((name, key))
        return limiter.month_count if limiter else 0

    def restart_storms(self, old: EmulatorConfig, new: EmulatorConfig, now: float) -> None:
        """Restart the storm clock of each upstream whose storm settings changed."""
        for name in UPSTREAM_CLASSES:
            if old.upstreams[name].faults.storm != new.upstreams[name].faults.storm:
                self._storm_epoch[name] = now

    def admit(
        self, upstream: Upstream, cfg: UpstreamConfig, key: str, now: float
    ) -> KeyLimiter | Response:
        """The key's limiter with this request started (call its ``finish()`` when done),
        or the rejection to send instead."""
        self._retries.check(upstream.name, key, now)
        storm_left = self._storm_left(upstream.name, cfg, now)
        if storm_left is not None:
            return self._storm_rejection(upstream, cfg, key, now, storm_left)
        limiter = self._limiters.get((upstream.name, key))
        if limiter is None:
            limiter = self._limiters[(upstream.name, key)] = KeyLimiter()
        rejection = limiter.check(cfg.limits_for(key), now, dt.datetime.now(dt.UTC))
        if rejection is not None:
            return self._limit_rejection(upstream, cfg, key, now, rejection)
        hidden_wait = self._hidden_wait(upstream.name, cfg, key, now)
        if hidden_wait is not None:
            return self._hidden_rejection(upstream, cfg, key, now, hidden_wait)
        limiter.record(now)
        if cfg.capacity.hidden_rate is not None:
            self._hidden.setdefault((upstream.name, key), RollingWindow()).record(now)
        return limiter

    def window_state(
        self, name: str, cfg: UpstreamConfig, key: str, now: float
    ) -> tuple[int, int, float] | None:
        """``(limit, remaining, reset_s)`` of the tightest window limit on ``key`` now:
        ``capacity.hidden_rate`` if set, else ``limits.rate``; ``None`` when neither is."""
        hidden = cfg.capacity
        if hidden.hidden_rate is not None:
            window = self._hidden.get((name, key), RollingWindow())
            used = window.count(hidden.hidden_window_s, now)
            reset_s = window.reset_s(hidden.hidden_window_s, now)
            return hidden.hidden_rate, max(0, hidden.hidden_rate - used), reset_s
        limits = cfg.limits_for(key)
        if limits.rate is None:
            return None
        limiter = self._limiters.get((name, key))
        if limiter is None:
            return limits.rate, limits.rate, 0.0
        used = limiter.window_count(limits, now)
        return limits.rate, max(0, limits.rate - used), limiter.window_reset_s(limits, now)

    def _hidden_wait(self, name: str, cfg: UpstreamConfig, key: str, now: float) -> float | None:
        """Seconds until ``key`` is under the hidden rate again, or ``None`` if it is now."""
        rate, window_s = cfg.capacity.hidden_rate, cfg.capacity.hidden_window_s
        window = self._hidden.get((name, key))
        if rate is None or window is None or window.count(window_s, now) < rate:
            return None
        return window.reset_s(window_s, now)

    def _hidden_rejection(
        self, upstream: Upstream, cfg: UpstreamConfig, key: str, now: float, wait_s: float
    ) -> Response:
        self._stats.hidden_rejection(upstream.name)
        retry_after: int | None = None
        if self._rng.random() < cfg.limits_for(key).retry_after_probability():
            retry_after = ceil_seconds(wait_s)
        context = RejectionContext(
            status=429,
            retry_after=retry_after,
            wait_s=wait_s,
            limit=cfg.capacity.hidden_rate,
            remaining=0,
            wall=dt.datetime.now(dt.UTC),
        )
        return self._sent_rejection(upstream, key, now, context)

    def _storm_left(self, name: str, cfg: UpstreamConfig, now: float) -> float | None:
        storm = cfg.faults.storm
        if storm is None:
            return None
        elapsed = now - self._storm_epoch[name] - storm.start_s
        return storm.duration_s - elapsed if 0 <= elapsed < storm.duration_s else None

    def _storm_rejection(
        self, upstream: Upstream, cfg: UpstreamConfig, key: str, now: float, left: float
    ) -> Response:
        storm = cfg.faults.storm
        assert storm is not None
        retry_after = ceil_seconds(storm.retry_after_s if storm.retry_after_s is not None else left)
        self._stats.rejected(upstream.name, "storm")
        context = RejectionContext(
            status=429,
            retry_after=retry_after,
            wait_s=left,
            limit=cfg.limits.rate,
            remaining=0,
            wall=dt.datetime.now(dt.UTC),
            storm=True,
        )
        return self._sent_rejection(upstream, key, now, context)

    def _limit_rejection(
        self, upstream: Upstream, cfg: UpstreamConfig, key: str, now: float, rejection: Rejection
    ) -> Response:
        name, limits = upstream.name, cfg.limits_for(key)
        for kind, detail in zip(rejection.kinds, rejection.details, strict=True):
            self._stats.violation(name, key, kind, detail)
        self._stats.rejected(name, rejection.kinds[0])
        retry_after: int | None = None
        if self._rng.random() < limits.retry_after_probability():
            retry_after = ceil_seconds(rejection.retry_after_s)
        context = RejectionContext(
            status=limits.status,
            retry_after=retry_after,
            wait_s=rejection.retry_after_s,
            limit=rejection.limit,
            remaining=rejection.remaining,
            wall=dt.datetime.now(dt.UTC),
        )
        return self._sent_rejection(upstream, key, now, context)

    def _sent_rejection(
        self, upstream: Upstream, key: str, now: float, context: RejectionContext
    ) -> Response:
        """The upstream's rejection; a Retry-After it really carries is remembered.

        Some upstreams never send one (NearBlocks outside storms, a NanoRPCProxy), whatever
        the configuration says: early retries are only counted against a header sent.
        """
        response = upstream.rejection(context)
        if context.retry_after is not None and any(
            name == b"retry-after" for name, _ in response.headers
        ):
            self._retries.remember(upstream.name, key, now, context.retry_after)
        return response
