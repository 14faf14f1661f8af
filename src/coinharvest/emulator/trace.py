"""Service counters per upstream and the time series of served requests.

Counters (in ``GET /__emulator__/stats`` under ``service``, one entry per upstream)::

    {"capacity": 8, "queued": 0, "in_service": 2,        # now (None: unlimited capacity)
     "served": 420, "max_queued": 12, "max_in_service": 8}

The time series (``GET /__emulator__/trace``; :meth:`ServiceTrace.document`) holds the
last :data:`TRACE_LIMIT` served requests, oldest first::

    {"recorded": 420, "dropped": 0,
     "requests": [{"upstream": "3xpl", "key": "ip:127.0.0.1", "status": 200,
                   "arrival_s": 1.250103, "start_s": 1.250201, "end_s": 1.452917}, ...]}

Times are monotonic seconds since the emulator's epoch (its start or last reset, as the
stats' ``uptime_s``); ``start_s - arrival_s`` is the time queued for a service slot.
``status`` is ``null`` when the connection was reset. A request is *served* once it got a
slot and its answer (or injected fault) was sent.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

__all__ = ["TRACE_LIMIT", "ServiceTrace"]

#: Served requests kept in the time series (all upstreams together).
TRACE_LIMIT = 100_000

_Entry = tuple[str, str, int | None, float, float, float]


class ServiceTrace:
    """Counters and recent served requests; single-threaded (the event loop)."""

    def __init__(self, limit: int = TRACE_LIMIT) -> None:
        self.served: Counter[str] = Counter()
        self.max_queued: Counter[str] = Counter()
        self.max_in_service: Counter[str] = Counter()
        self.recorded = 0
        self._entries: deque[_Entry] = deque(maxlen=limit)

    def __repr__(self) -> str:
        return f"<ServiceTrace recorded={self.recorded} kept={len(self._entries)}>"

    def queued(self, upstream: str, length: int) -> None:
        """A request joined the queue, which is now ``length`` long."""
        if length > self.max_queued[upstream]:
            self.max_queued[upstream] = length

    def started(self, upstream: str, in_service: int) -> None:
        """A request got a slot; ``in_service`` requests are now being served."""
        if in_service > self.max_in_service[upstream]:
            self.max_in_service[upstream] = in_service

    def finished(
        self,
        upstream: str,
        key: str,
        status: int | None,
        times: tuple[float, float, float],
    ) -> None:
        """A request was served: ``times`` = (arrival, service start, end), on the clock."""
        self.served[upstream] += 1
        self.recorded += 1
        self._entries.append((upstream, key, status, *times))

    def counters(self, live: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Per upstream: the ``live`` gauges (capacity, queue, in service) and the counters."""
        names = [*live, *(name for name in self.served if name not in live)]
        return {
            name: {
                **live.get(name, {}),
                "served": self.served[name],
                "max_queued": self.max_queued[name],
                "max_in_service": self.max_in_service[name],
            }
            for name in names
        }

    def document(
        self, epoch: float, upstream: str | None = None, since_s: float | None = None
    ) -> dict[str, Any]:
        """The time series (see the module docstring), optionally for one ``upstream``
        and for requests arriving at ``since_s`` or later; ``epoch`` is time zero."""
        requests = []
        for name, key, status, arrival, start, end in self._entries:
            arrival_s = arrival - epoch
            if (upstream is not None and name != upstream) or (
                since_s is not None and arrival_s < since_s
            ):
                continue
            requests.append(
                {
                    "upstream": name,
                    "key": key,
                    "status": status,
                    "arrival_s": round(arrival_s, 6),
                    "start_s": round(start - epoch, 6),
                    "end_s": round(end - epoch, 6),
                }
            )
        dropped = self.recorded - len(self._entries)
        return {"recorded": self.recorded, "dropped": dropped, "requests": requests}
