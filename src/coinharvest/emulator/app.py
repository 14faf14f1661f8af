"""The emulator's ASGI application: routing to upstreams plus the uniform request pipeline.

For each request to ``/<upstream>/...`` (see :mod:`coinharvest.emulator.upstreams`):

1. route and identify the caller (API key, or ``ip:<addr>`` when keyless); auth errors
   are answered at once;
2. a request arriving while an earlier ``Retry-After`` for the same key is still running
   is counted as an ``early_retry`` violation (it is otherwise handled normally);
3. during a scheduled storm, answer the upstream's rate-limit rejection;
4. the key's :class:`~coinharvest.emulator.limits.KeyLimiter` admits the request or it is
   rejected, with each broken limit counted as a violation;
5. an admitted request waits its latency, then gets either an injected fault or the
   endpoint's answer.

Everything runs on the event loop's thread; time is the monotonic clock.
``/__emulator__/...`` is the control plane (:mod:`coinharvest.emulator.admin`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable

from coinharvest.emulator import admin
from coinharvest.emulator.catalog import build_catalog
from coinharvest.emulator.config import (
    EmulatorConfig,
    ShapeConfig,
    UpstreamConfig,
    UpstreamName,
)
from coinharvest.emulator.data import MarketData
from coinharvest.emulator.faults import (
    FIREWALL_403_PAGE,
    GATEWAY_TIMEOUT_PAGE,
    draw_fault,
    malform,
    truncate,
)
from coinharvest.emulator.http import (
    Receive,
    Request,
    Response,
    Scope,
    Send,
    html_response,
    json_response,
    read_body,
    reset_connection,
    send_response,
)
from coinharvest.emulator.latency import sample_delay
from coinharvest.emulator.limits import KeyLimiter, Rejection, ceil_seconds
from coinharvest.emulator.stats import Stats
from coinharvest.emulator.upstreams import UPSTREAM_CLASSES, Upstream
from coinharvest.emulator.upstreams.base import RejectionContext, Route
from coinharvest.emulator.upstreams.coingecko import CoinGecko

__all__ = ["EARLY_RETRY_GRACE_S", "EmulatorApp"]

#: Most distinct requests kept in the edge cache (it is emptied when full).
CACHE_ENTRIES = 4096
#: A request this soon after a rejection may have been sent before the client saw it.
EARLY_RETRY_GRACE_S = 0.05
_ERROR_STATUS = {"error_500": 500, "error_502": 502, "error_503": 503}


class EmulatorApp:
    """ASGI app emulating all upstreams; :meth:`configure` changes it, :meth:`reset` clears it.

    :param config: initial configuration (default: permissive, no limits or faults).
    :param clock: monotonic clock in seconds, used for every limit decision.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.config = config or EmulatorConfig()
        self.closing = asyncio.Event()
        self._build_upstreams()
        self.reset()

    def _build_upstreams(self) -> None:
        cfg = self.config
        self.data = MarketData(build_catalog(cfg.seed, cfg.universe), cfg.seed, cfg.cache_s)
        self.upstreams: dict[str, Upstream] = {}
        for name, cls in UPSTREAM_CLASSES.items():
            upstream = self.upstreams[name] = cls(self.data)
            upstream.shape = self._shape_of(name)
        coingecko = self.upstreams["coingecko"]
        assert isinstance(coingecko, CoinGecko)
        coingecko.usage = self._monthly_usage("coingecko")

    def _shape_of(self, name: UpstreamName) -> Callable[[], ShapeConfig]:
        def shape() -> ShapeConfig:
            return self.config.upstreams[name].shape

        return shape

    def _monthly_usage(self, name: UpstreamName) -> Callable[[str], int]:
        def usage(key: str) -> int:
            limiter = self._limiters.get((name, key))
            return limiter.month_count if limiter else 0

        return usage

    def reset(self) -> None:
        """Clear stats, limiter state and Retry-After tracking; restart storms; re-seed."""
        self.stats = Stats(self._clock)
        self.rng = random.Random(self.config.seed)
        self._limiters: dict[tuple[str, str], KeyLimiter] = {}
        self._cache: dict[tuple[str, str, str, bytes, bytes], Response] = {}
        self._cache_period = 0.0
        self._retry_until: dict[tuple[str, str], tuple[float, float]] = {}
        now = self._clock()
        self._storm_epoch: dict[str, float] = dict.fromkeys(UPSTREAM_CLASSES, now)

    def configure(self, config: EmulatorConfig) -> None:
        """Switch to ``config`` now; limiter state and stats are kept.

        A storm restarts its clock only if that upstream's storm settings changed; the data
        universe is rebuilt only if ``seed``, ``universe`` or ``cache_s`` changed, and the
        edge cache is emptied then or when an answer shape changed.
        """
        old, now = self.config, self._clock()
        self.config = config
        for name in UPSTREAM_CLASSES:
            if old.upstreams[name].faults.storm != config.upstreams[name].faults.storm:
                self._storm_epoch[name] = now
        if (old.seed, old.universe, old.cache_s) != (config.seed, config.universe, config.cache_s):
            self._build_upstreams()
            self._cache.clear()
        elif any(old.upstreams[n].shape != config.upstreams[n].shape for n in UPSTREAM_CLASSES):
            self._cache.clear()  # cached answers have the old shape

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        head, slash, rest = path[1:].partition("/")
        if head == "__emulator__":
            await send_response(send, await admin.handle(self, scope, rest, receive))
            return
        upstream = self.upstreams.get(head)
        if upstream is None:
            await send_response(send, _unknown_upstream(head))
            return
        request = Request.from_scope(scope, slash + rest)
        if scope["method"] == "POST":
            request.body = await read_body(receive)
        await self._serve(upstream, request, send, self._arrival(scope))

    def _arrival(self, scope: Scope) -> float:
        """When the request arrived: the protocol's stamp (see `runner`), else now."""
        stamp = scope.get("state", {}).get("arrival")
        if isinstance(stamp, float) and self._clock is time.monotonic:
            return stamp
        return self._clock()

    async def _serve(self, upstream: Upstream, request: Request, send: Send, now: float) -> None:
        name = upstream.name
        cfg = self.config.upstreams[name]
        route = upstream.route(request)
        identity = upstream.identify(request, cfg.auth)
        key = identity if isinstance(identity, str) else "(rejected key)"
        self.stats.arrival(name, route.endpoint if route else "(not found)", key, now)
        if isinstance(identity, Response):
            await self._send(name, send, identity)
            return
        if route is None:
            await self._send(name, send, upstream.not_found(request))
            return
        self._check_early_retry(name, key, now)
        storm_left = self._storm_left(name, cfg, now)
        if storm_left is not None:
            await self._send(name, send, self._storm_rejection(upstream, cfg, key, now, storm_left))
            return
        await self._admit(upstream, cfg, route, request, key, now, send)

    async def _admit(
        self,
        upstream: Upstream,
        cfg: UpstreamConfig,
        route: Route,
        request: Request,
        key: str,
        now: float,
        send: Send,
    ) -> None:
        name = upstream.name
        limiter = self._limiters.get((name, key))
        if limiter is None:
            limiter = self._limiters[(name, key)] = KeyLimiter()
        limits = cfg.limits_for(key)
        rejection = limiter.try_start(limits, now, dt.datetime.now(dt.UTC))
        if rejection is not None:
            response = self._limit_rejection(upstream, cfg, key, now, rejection)
            await self._send(name, send, response)
            return
        self.stats.started_request(name, key)
        try:
            await self._answer(upstream, cfg, route, request, key, send)
        finally:
            limiter.finish()
            self.stats.finished_request(name, key)

    async def _answer(
        self,
        upstream: Upstream,
        cfg: UpstreamConfig,
        route: Route,
        request: Request,
        key: str,
        send: Send,
    ) -> None:
        delay = sample_delay(cfg.latency, self.rng)
        if delay > 0:
            await asyncio.sleep(delay)
        fault = draw_fault(cfg.faults, self.rng)
        if fault is not None:
            self.stats.fault(upstream.name, fault)
            await self._inject(upstream, cfg, fault, route, request, key, send)
            return
        response = self._render(upstream.name, route, request, key)
        self._note_response(upstream.name, route.endpoint, key, response)
        await self._send(upstream.name, send, response)

    async def _inject(
        self,
        upstream: Upstream,
        cfg: UpstreamConfig,
        fault: str,
        route: Route,
        request: Request,
        key: str,
        send: Send,
    ) -> None:
        if fault in _ERROR_STATUS:
            response = upstream.server_error(_ERROR_STATUS[fault])
        elif fault == "html_403":
            response = html_response(403, FIREWALL_403_PAGE)
        elif fault == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), cfg.faults.hang_s)
            response = html_response(504, GATEWAY_TIMEOUT_PAGE)
        elif fault == "reset":
            if reset_connection(send):
                # Let the server see the connection as lost before this handler returns,
                # so it does not log "returned without starting response".
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                return
            raise ConnectionResetError("emulated connection reset")
        else:
            response = self._render(upstream.name, route, request, key)
            corrupt = malform if fault == "malformed_json" else truncate
            response = dataclasses.replace(response, body=corrupt(response.body))
        await self._send(upstream.name, send, response)

    def _render(self, name: str, route: Route, request: Request, key: str) -> Response:
        """The endpoint's answer, reused for an identical request in the same data period.

        This is the upstreams' edge cache (identical polls within ``cache_s`` see identical
        bodies) and most of the emulator's throughput. Cached responses are shared: never
        mutate one.
        """
        if not route.cacheable or self.config.cache_s <= 0:
            return route.handler(request, key)
        period = self.data.now()
        if period != self._cache_period or len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
            self._cache_period = period
        cache_key = (name, request.method, request.path, request.raw_query, request.body)
        response = self._cache.get(cache_key)
        if response is None:
            response = self._cache[cache_key] = route.handler(request, key)
        return response

    def _note_response(self, name: str, endpoint: str, key: str, response: Response) -> None:
        if response.ids is not None:
            self.stats.ids_requested(name, endpoint, response.ids)
        if response.violation is not None:
            self.stats.violation(name, key, response.violation, f"{endpoint}: HTTP 400")

    async def _send(self, name: str, send: Send, response: Response) -> None:
        self.stats.response(name, response.status)
        await send_response(send, response)

    def _check_early_retry(self, name: str, key: str, now: float) -> None:
        window = self._retry_until.get((name, key))
        if window is None:
            return
        rejected_at, until = window
        if now >= until:
            del self._retry_until[(name, key)]
        elif now - rejected_at > EARLY_RETRY_GRACE_S:
            detail = f"{(until - now) * 1000:.0f} ms before Retry-After expired"
            self.stats.violation(name, key, "early_retry", detail)

    def _remember_retry_after(self, name: str, key: str, now: float, seconds: int) -> None:
        # While a Retry-After is running, later rejections extend it but keep the first
        # rejection time: the grace is only for requests already in flight when it was sent.
        rejected_at, until = self._retry_until.get((name, key), (now, now))
        if now >= until:
            rejected_at = now
        self._retry_until[(name, key)] = (rejected_at, max(until, now + seconds))

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
        self.stats.rejected(upstream.name, "storm")
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
            self.stats.violation(name, key, kind, detail)
        self.stats.rejected(name, rejection.kinds[0])
        retry_after: int | None = None
        if self.rng.random() < limits.retry_after_probability():
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
            self._remember_retry_after(upstream.name, key, now, context.retry_after)
        return response


def _unknown_upstream(head: str) -> Response:
    message = f"unknown upstream {head!r}; use one of {', '.join(UPSTREAM_CLASSES)}"
    return json_response(404, {"error": message})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
