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
- the no-load time is the least 10th percentile of a window's answer times in the last
  minute (so the answers that met no queue count even while the limit is too high, as at
  the start), refreshed by holding the limit one below for one window every 20 s (Envoy's
  periodic minRTT measurement, made gentle: one request less, not a drop to
  ``min_concurrency``);
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

    :ivar min_window_s: a sample window lasts at least this long...
    :ivar window_rtts: ...and at least this many no-load response times (Gradient2: 2)...
    :ivar min_samples: ...and holds at least this many answers (else it goes on).
    :ivar queue_low: fewer requests queued than this: grow by one.
    :ivar queue_high: more than this: shrink to what was in flight minus the queue.
    :ivar rtt_memory_s: the no-load time is the least window 10th percentile seen this long.
    :ivar probe_every_s: how often one window runs one request below the limit.
    :ivar drop_ratio: the limit is multiplied by this on a timeout or a 5xx.
    """

    min_window_s: float = 0.5
    window_rtts: float = 2.0
    min_samples: int = 5
    queue_low: float = 0.5
    queue_high: float = 1.5
    rtt_memory_s: float = 60.0
    probe_every_s: float = 20.0
    drop_ratio: float = 0.9


class ConcurrencyControl:
    """The in-flight limit of one source (see the module docstring).

    :param ceiling: the configured most in flight; the limit never exceeds it.
    :param start: where the limit starts (a learned value); default: the ceiling.
    """

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
        self._window_start: float | None = None
        self._rtts: list[float] = []
        self._max_in_flight = 0
        self._floors: deque[tuple[float, float]] = deque()  # (window end, p10 of its rtts)
        self._last_drop = float("-inf")
        self._next_probe: float | None = None  # set when the first window closes
        self._probing = False

    def __repr__(self) -> str:
        return f"<ConcurrencyControl limit={self.limit:.2f} cap={self.cap}/{self.ceiling}>"

    @property
    def cap(self) -> int:
        """Requests that may be in flight now (one less during a probe window)."""
        cap = max(1, int(self.limit))
        return max(1, cap - 1) if self._probing else cap

    def no_load_rtt(self) -> float | None:
        """The least window 10th percentile remembered (None before a window closed)."""
        return min(m for _, m in self._floors) if self._floors else None

    def answered(self, now: float, rtt: float, in_flight: int) -> None:
        """A request that had `in_flight` requests out (itself included) when it was sent
        was answered after `rtt` seconds, at `now`."""
        if self._window_start is None:
            self._window_start = now - rtt
        self._rtts.append(rtt)
        self._max_in_flight = max(self._max_in_flight, in_flight)
        base = self.no_load_rtt()
        length = max(self.tuning.min_window_s, self.tuning.window_rtts * (base or rtt))
        if now - self._window_start >= length and len(self._rtts) >= self.tuning.min_samples:
            self._close_window(now)

    def dropped(self, now: float, started_at: float) -> None:
        """A request started at `started_at` timed out or got a 5xx: back off, once for all
        the requests that were already out when the last back-off happened."""
        if started_at <= self._last_drop:
            return
        self._last_drop = now
        self.limit = max(1.0, self.limit * self.tuning.drop_ratio)

    def _close_window(self, now: float) -> None:
        rtts = sorted(self._rtts)
        mean = statistics.fmean(rtts)
        used, probing = self._max_in_flight, self._probing
        self._rtts.clear()
        self._max_in_flight = 0
        self._window_start = now
        self._remember(now, rtts[len(rtts) // 10])
        self._probing = False
        if probing:
            return  # one request below the limit: this window measured the no-load time
        if self._next_probe is None:
            self._next_probe = now + self.tuning.probe_every_s
        elif now >= self._next_probe and self.cap > 1:
            self._probing = True
            self._next_probe = now + self.tuning.probe_every_s
        self._decide(mean, used)

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
