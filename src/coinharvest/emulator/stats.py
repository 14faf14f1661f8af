"""Counters of everything the emulator saw, served at ``GET /__emulator__/stats``.

Shape of :meth:`Stats.snapshot` (all maps keyed by upstream name first)::

    {
      "uptime_s": 12.3,
      "requests_total": 420,
      "requests": {"coingecko": {"/coins/markets": {"demo-key": 17}}},   # endpoint -> key -> n
      "responses": {"coingecko": {"200": 15, "429": 2}},
      "rate_limited": {"total": 2, "by_upstream": {"coingecko": {"spacing": 2}}},  # rejections sent
      "violations": {"total": 2, "by_kind": {"spacing": 2},
                     "by_upstream": {"coingecko": {"spacing": 2}},
                     "recent": [{"upstream", "key", "kind", "at_s", "detail"}, ...]},
      "faults": {"coingecko": {"error_503": 4}},
      "max_in_flight": {"coingecko": {"demo-key": 3}},
      "min_spacing_ms": {"coingecko": {"demo-key": 2000.4}},   # between request arrivals
      "ids_per_request": {"coingecko": {"/coins/markets": {"requests": 3, "total": 33, "min": 11,
                                                            "max": 11, "recent": [11, 11, 11]}}},
      "hidden_rejected": {"3xpl": 4},        # over capacity.hidden_rate (also in rate_limited)
      "service": {"3xpl": {"capacity": 8, "queued": 0, "in_service": 2, "served": 420,
                           "max_queued": 12, "max_in_service": 8}}     # see trace.py
    }

A *violation* is a client mistake (breaking a limit, ignoring a Retry-After, a batch too
large). A storm rejection is counted in ``rate_limited`` (reason ``storm``) but is not a
violation: the client did nothing wrong. Nor is a rejection over an upstream's hidden rate
(``capacity.hidden_rate``): counted in ``rate_limited`` (reason ``hidden``) and
``hidden_rejected``. The served requests' time series is in :attr:`Stats.service`.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Mapping
from typing import Any

from coinharvest.emulator.trace import ServiceTrace

__all__ = ["Stats"]

RECENT = 200


def _nested_counter() -> defaultdict[str, Counter[str]]:
    return defaultdict(Counter)


class _IdsStat:
    __slots__ = ("max", "min", "recent", "requests", "total")

    def __init__(self) -> None:
        self.requests = 0
        self.total = 0
        self.min: int | None = None
        self.max = 0
        self.recent: deque[int] = deque(maxlen=RECENT)

    def add(self, ids: int) -> None:
        self.requests += 1
        self.total += ids
        self.min = ids if self.min is None else min(self.min, ids)
        self.max = max(self.max, ids)
        self.recent.append(ids)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "recent": list(self.recent),
        }


class Stats:
    """Mutable counters; single-threaded (the event loop), so no locking."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.requests_total = 0
        self.requests: defaultdict[str, defaultdict[str, Counter[str]]] = defaultdict(
            _nested_counter
        )
        self.responses = _nested_counter()
        self.rate_limited = _nested_counter()
        self.violations = _nested_counter()
        self.recent_violations: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.faults = _nested_counter()
        self.in_flight: defaultdict[str, Counter[str]] = _nested_counter()
        self.max_in_flight = _nested_counter()
        self.last_arrival: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self.min_spacing: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self.ids: defaultdict[str, dict[str, _IdsStat]] = defaultdict(dict)
        self.hidden_rejected: Counter[str] = Counter()
        self.service = ServiceTrace()

    def arrival(self, upstream: str, endpoint: str, key: str, now: float) -> None:
        """Count a request and track the spacing between arrivals of the same key."""
        self.requests_total += 1
        self.requests[upstream][endpoint][key] += 1
        last = self.last_arrival[upstream].get(key)
        if last is not None:
            gap_ms = (now - last) * 1000.0
            current = self.min_spacing[upstream].get(key)
            if current is None or gap_ms < current:
                self.min_spacing[upstream][key] = gap_ms
        self.last_arrival[upstream][key] = now

    def started_request(self, upstream: str, key: str) -> None:
        """An admitted request began; track the highest concurrency seen."""
        self.in_flight[upstream][key] += 1
        level = self.in_flight[upstream][key]
        if level > self.max_in_flight[upstream][key]:
            self.max_in_flight[upstream][key] = level

    def finished_request(self, upstream: str, key: str) -> None:
        """An admitted request ended."""
        self.in_flight[upstream][key] -= 1

    def response(self, upstream: str, status: int) -> None:
        """Count a response by status."""
        self.responses[upstream][str(status)] += 1

    def rejected(self, upstream: str, reason: str) -> None:
        """Count a rate-limit rejection sent (429, or Blockchair's 402/430)."""
        self.rate_limited[upstream][reason] += 1

    def hidden_rejection(self, upstream: str) -> None:
        """Count a rejection over the upstream's hidden rate (not a violation)."""
        self.rate_limited[upstream]["hidden"] += 1
        self.hidden_rejected[upstream] += 1

    def violation(self, upstream: str, key: str, kind: str, detail: str = "") -> None:
        """Count one client mistake of ``kind``."""
        self.violations[upstream][kind] += 1
        at_s = round(self._clock() - self.started, 6)
        entry = {"upstream": upstream, "key": key, "kind": kind, "at_s": at_s, "detail": detail}
        self.recent_violations.append(entry)

    def fault(self, upstream: str, kind: str) -> None:
        """Count an injected fault."""
        self.faults[upstream][kind] += 1

    def ids_requested(self, upstream: str, endpoint: str, ids: int) -> None:
        """Record how many coin ids one request asked for."""
        self.ids[upstream].setdefault(endpoint, _IdsStat()).add(ids)

    def snapshot(self, live: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """A JSON-ready copy of all counters (see the module docstring).

        ``live`` holds each upstream's service gauges now (``capacity``, ``queued``,
        ``in_service``), merged into ``service``.
        """
        by_kind: Counter[str] = Counter()
        for counts in self.violations.values():
            by_kind.update(counts)
        limited = {name: dict(c) for name, c in self.rate_limited.items()}
        return {
            "uptime_s": round(self._clock() - self.started, 3),
            "requests_total": self.requests_total,
            "requests": {
                u: {e: dict(k) for e, k in eps.items()} for u, eps in self.requests.items()
            },
            "responses": {u: dict(c) for u, c in self.responses.items()},
            "rate_limited": {
                "total": sum(sum(c.values()) for c in self.rate_limited.values()),
                "by_upstream": limited,
            },
            "violations": {
                "total": sum(by_kind.values()),
                "by_kind": dict(by_kind),
                "by_upstream": {u: dict(c) for u, c in self.violations.items()},
                "recent": list(self.recent_violations),
            },
            "faults": {u: dict(c) for u, c in self.faults.items()},
            "max_in_flight": {u: dict(c) for u, c in self.max_in_flight.items()},
            "min_spacing_ms": {
                u: {k: round(v, 3) for k, v in m.items()} for u, m in self.min_spacing.items()
            },
            "ids_per_request": {
                u: {e: s.as_dict() for e, s in m.items()} for u, m in self.ids.items()
            },
            "hidden_rejected": dict(self.hidden_rejected),
            "service": self.service.counters(live or {}),
        }
