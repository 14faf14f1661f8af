"""The upstreams' edge cache: identical polls within ``cache_s`` see identical bodies.

It is most of the emulator's throughput. Cached responses are shared: never mutate one.
"""

from __future__ import annotations

from coinharvest.emulator.data import MarketData
from coinharvest.emulator.http import Request, Response
from coinharvest.emulator.upstreams.base import Route

__all__ = ["CACHE_ENTRIES", "EdgeCache"]

#: Most distinct requests kept in the edge cache (it is emptied when full).
CACHE_ENTRIES = 4096


class EdgeCache:
    """Answers of cacheable routes, kept for the current data period."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str, bytes, bytes], Response] = {}
        self._period = 0.0

    def clear(self) -> None:
        """Forget every cached answer (e.g. after the data or an answer shape changed)."""
        self._entries.clear()

    def render(
        self, name: str, route: Route, request: Request, key: str, data: MarketData
    ) -> Response:
        """The endpoint's answer, reused for an identical request in the same data period."""
        if not route.cacheable or data.cache_s <= 0:
            return route.handler(request, key)
        period = data.now()
        if period != self._period or len(self._entries) >= CACHE_ENTRIES:
            self._entries.clear()
            self._period = period
        cache_key = (name, request.method, request.path, request.raw_query, request.body)
        response = self._entries.get(cache_key)
        if response is None:
            response = self._entries[cache_key] = route.handler(request, key)
        return response
