"""How many requests a source may have in flight, learned from its response times.

A server with capacity for K requests at once answers in its no-load time while fewer than
K are in flight; beyond that, requests wait in its queue and every answer takes longer. By
Little's law, with L requests in flight and a mean answer time ``rtt``, about
``L × (1 − rtt_noload / rtt)`` of them are waiting in the server's queue (the queue estimate
of Netflix's Vegas limit). `ConcurrencyControl` keeps that estimate near one request:

- it grows the limit by one per sample window while fewer than ``queue_low`` (0.5) requests
  queue and the limit was really used (the app-limited guard of Netflix's AIMD/Vegas: idle
  capacity is no evidence);
- it shrinks the limit to what was in flight minus the queue (plus ``queue_low``) as soon
  as more than ``queue_high`` (1.5) queue: one window takes it from 9 to 2 when a server's
  capacity drops from 8 to 2;
- a timeout or a 5xx multiplies it by 0.9, once per window of requests (Netflix AIMD's
  ``backoffRatio``);
- the no-load time is the least window mean of the last minute, measured by holding the
  limit at half for one window right after the first window and then every 20 s (Envoy's
  periodic minRTT measurement, which pins the limit to ``min_concurrency``; half is enough
  to empty a queue of up to the limit, costs about 2.5 % of the throughput, and recovers a
  capacity that fell to a quarter within three probes);
- a window is the requests *sent* under one limit, judged when all of them have ended, so
  each decision judges the limit its requests ran under and no slow answer is left out
  (windows of *answers* mixed limits and favoured fast answers: the limit stuck at K + 2
  or saw-toothed, docs/ADAPTIVE.md); Envoy likewise drops samples from before its
  measurement epoch;
- the configured ``MAX_<SRC>_CONCURRENCY`` stays the ceiling.

Why not Envoy's gradient or Gradient2 as they are (docs/ADAPTIVE.md has the measurements):
at the limits of this project (1-16) their ``+sqrt(limit)`` / ``+4`` headroom keeps the
limit two to four above a server's capacity; the queue estimate, in whole requests, is
exact there (with L ≥ K in flight, ``L × (1 − K/L) = L − K``).
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

__all__ = ["ConcurrencyControl", "ConcurrencyTuning"]


@dataclass(frozen=True, slots=True)
class ConcurrencyTuning:
    """The controller's constants (defaults chosen by measurement, docs/ADAPTIVE.md).

    :ivar min_window_s: a window takes requests for at least this long...
    :ivar window_rtts: ...and at least this many no-load response times (Gradient2: 2)...
    :ivar min_samples: ...and at least this many requests (Gradient2's WindowedLimit: 10).
    :ivar queue_low: fewer requests queued than this: grow by one.
    :ivar queue_high: more than this: shrink to what was in flight minus the queue.
    :ivar rtt_memory_s: the no-load time is the least window mean seen this long.
    :ivar probe_every_s: how often one window runs at half the limit.
    :ivar drop_ratio: the limit is multiplied by this on a timeout or a 5xx.
    """

    min_window_s: float = 0.5
    window_rtts: float = 2.0
    min_samples: int = 10
    queue_low: float = 0.5
    queue_high: float = 1.5
    rtt_memory_s: float = 60.0
    probe_every_s: float = 20.0
    drop_ratio: float = 0.9


class _Window:
    """The requests sent under one limit, and their answer times as they come back."""

    __slots__ = ("id", "max_in_flight", "pending", "rtts", "sealed_at", "sent", "start")

    def __init__(self, ident: int, start: float) -> None:
        self.id = ident
        self.start = start
        self.sealed_at: float | None = None  # when it stopped taking requests
        self.sent = self.pending = self.max_in_flight = 0
        self.rtts: list[float] = []


class ConcurrencyControl:
    """The in-flight limit of one source (see the module docstring).

    A window is the requests *sent* while one limit was in force: it takes requests for
    at least ``min_window_s`` and ``window_rtts`` no-load times and ``min_samples`` of them,
    then is sealed, and closes (and decides) when every one of them has ended. Requests sent
    while a sealed window waits belong to no window. So every decision judges the limit its
    requests ran under, and no slow answer is left out of the mean.

    :param ceiling: the configured most in flight; the limit never exceeds it.
    :param start: where the limit starts (a learned value); default: the ceiling.
    """

    #: A sealed window whose requests never all end (a cancelled run) is given up after this.
    STALE_S = 120.0

    def __init__(
        self,
        ceiling: int,
        tuning: ConcurrencyTuning | None = None,
        *,
        start: float | None = None,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.tuning = tuning or ConcurrencyTuning()
        self.limit = float(self.ceiling)
        if start is not None:
            self.limit = min(float(self.ceiling), max(1.0, start))
        self._window: _Window | None = None
        self._ids = 0
        self._floors: deque[tuple[float, float]] = deque()  # (window end, its mean rtt)
        self._last_drop = float("-inf")
        self._next_probe: float | None = None  # set when the first window closes
        self._probing = False

    def __repr__(self) -> str:
        return f"<ConcurrencyControl limit={self.limit:.2f} cap={self.cap}/{self.ceiling}>"

    @property
    def cap(self) -> int:
        """Requests that may be in flight now (half during a probe window)."""
        cap = max(1, int(self.limit))
        return max(1, cap // 2) if self._probing else cap

    def no_load_rtt(self) -> float | None:
        """The least window mean remembered (None before a window closed)."""
        return min(m for _, m in self._floors) if self._floors else None

    def sent(self, now: float) -> int:
        """A request is sent at `now`; returns its window (give it back when it ends)."""
        w = self._window
        if w is not None and w.sealed_at is not None and now - w.sealed_at > self.STALE_S:
            w = self._window = None
        if w is None:
            self._ids += 1
            w = self._window = _Window(self._ids, now)
        if w.sealed_at is not None:
            return 0  # the window is waiting for its answers: this one counts nowhere
        w.sent += 1
        w.pending += 1
        base = self.no_load_rtt() or 0.0
        length = max(self.tuning.min_window_s, self.tuning.window_rtts * base)
        if now - w.start >= length and w.sent >= self.tuning.min_samples:
            w.sealed_at = now
        return w.id

    def answered(self, now: float, rtt: float, in_flight: int, window: int) -> None:
        """A request of `window` that had `in_flight` requests out (itself included) when
        it was sent was answered after `rtt` seconds, at `now`."""
        w = self._window
        if w is None or window != w.id:
            return
        w.rtts.append(rtt)
        w.max_in_flight = max(w.max_in_flight, in_flight)
        self.ended(now, window)

    def ended(self, now: float, window: int) -> None:
        """A request of `window` ended (answered or not); the last one closes it."""
        w = self._window
        if w is None or window != w.id:
            return
        w.pending -= 1
        if w.sealed_at is not None and w.pending <= 0:
            self._window = None
            if w.rtts:
                self._close(now, w)

    def dropped(self, now: float, started_at: float) -> None:
        """A request started at `started_at` timed out or got a 5xx: back off, once for all
        the requests that were already out when the last back-off happened."""
        if started_at <= self._last_drop:
            return
        self._last_drop = now
        self.limit = max(1.0, self.limit * self.tuning.drop_ratio)

    def _close(self, now: float, w: _Window) -> None:
        mean = statistics.fmean(w.rtts)
        probing, self._probing = self._probing, False
        if probing or self._next_probe is None:
            self._remember(now, mean)  # at half the limit (or the first window)
        if probing:
            return
        if self._next_probe is None or now >= self._next_probe:
            self._probing = self.cap > 1
            self._next_probe = now + self.tuning.probe_every_s
        self._decide(mean, w.max_in_flight)

    def _remember(self, now: float, floor: float) -> None:
        self._floors.append((now, floor))
        horizon = now - self.tuning.rtt_memory_s
        while len(self._floors) > 1 and self._floors[0][0] < horizon:
            self._floors.popleft()

    def _decide(self, mean: float, used: int) -> None:
        base = self.no_load_rtt()
        if base is None or mean <= 0 or used < 1:
            return
        queue = used * (1.0 - base / mean)
        if queue > self.tuning.queue_high:
            target = used - queue + self.tuning.queue_low
            self.limit = max(1.0, min(self.limit, target))
        elif queue < self.tuning.queue_low and used >= int(self.limit):
            self.limit = min(float(self.ceiling), float(int(self.limit) + 1))
