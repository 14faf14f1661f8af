"""The emulator's ASGI application: routing to upstreams plus the uniform request pipeline.

For each request to ``/<upstream>/...`` (see :mod:`coinharvest.emulator.upstreams`):

1. route and identify the caller (API key, or ``ip:<addr>`` when keyless); auth errors
   are answered at once;
2. a request arriving while an earlier ``Retry-After`` for the same key is still running
   is counted as an ``early_retry`` violation (it is otherwise handled normally;
   :mod:`coinharvest.emulator.retry_after`);
3. during a scheduled storm, answer the upstream's rate-limit rejection;
4. the key's :class:`~coinharvest.emulator.limits.KeyLimiter` admits the request or it is
   rejected, with each broken limit counted as a violation; then the upstream's hidden
   rate may still reject it (steps 2-4: :class:`~coinharvest.emulator.admission.Admission`);
5. an admitted request waits for a service slot of the upstream's hidden capacity
   (:class:`~coinharvest.emulator.capacity.ServiceGate`; unlimited by default), is served
   for its latency, then gets either an injected fault
   (:func:`~coinharvest.emulator.faults.fault_response`) or the endpoint's answer, through
   the edge cache (:class:`~coinharvest.emulator.cache.EdgeCache`); it is recorded in the
   served requests' time series (:mod:`coinharvest.emulator.trace`);
6. with ``capacity.headers`` on, every answer to an identified caller carries
   ``x-ratelimit-*`` headers (:meth:`~coinharvest.emulator.upstreams.base.Upstream.quota_headers`).

Everything runs on the event loop's thread; time is the monotonic clock.
``/__emulator__/...`` is the control plane (:mod:`coinharvest.emulator.admin`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import random
import time
from collections.abc import Callable
from typing import Any

from coinharvest.emulator import admin
from coinharvest.emulator.admission import Admission
from coinharvest.emulator.cache import EdgeCache
from coinharvest.emulator.capacity import ServiceGate
from coinharvest.emulator.catalog import build_catalog
from coinharvest.emulator.config import (
    UPSTREAMS,
    EmulatorConfig,
    ShapeConfig,
    UpstreamConfig,
    UpstreamName,
)
from coinharvest.emulator.data import MarketData
from coinharvest.emulator.faults import draw_fault, fault_response
from coinharvest.emulator.http import (
    Receive,
    Request,
    Response,
    Scope,
    Send,
    json_response,
    read_body,
    send_response,
)
from coinharvest.emulator.latency import sample_delay
from coinharvest.emulator.retry_after import EARLY_RETRY_GRACE_S
from coinharvest.emulator.stats import Stats
from coinharvest.emulator.upstreams import UPSTREAM_CLASSES, Upstream
from coinharvest.emulator.upstreams.base import Route
from coinharvest.emulator.upstreams.coingecko import CoinGecko

__all__ = ["EARLY_RETRY_GRACE_S", "EmulatorApp"]


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
        self._gates = {n: ServiceGate(self.config.upstreams[n].capacity, clock) for n in UPSTREAMS}
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
            return self._admission.month_count(name, key)

        return usage

    def reset(self) -> None:
        """Clear stats, limiter state and Retry-After tracking; restart storms and capacity
        steps; re-seed. Requests queued or in service keep their place."""
        self.stats = Stats(self._clock)
        self.rng = random.Random(self.config.seed)
        self._admission = Admission(self.stats, self.rng, self._clock())
        self._cache = EdgeCache()
        for name, gate in self._gates.items():
            gate.configure(self.config.upstreams[name].capacity, restart=True)

    def snapshot(self) -> dict[str, Any]:
        """The stats document (``GET /__emulator__/stats``), with each upstream's capacity now."""
        return self.stats.snapshot({name: gate.state() for name, gate in self._gates.items()})

    def trace(self, upstream: str | None = None, since_s: float | None = None) -> dict[str, Any]:
        """The served requests' time series (``GET /__emulator__/trace``)."""
        return self.stats.service.document(self.stats.started, upstream, since_s)

    def configure(self, config: EmulatorConfig) -> None:
        """Switch to ``config`` now; limiter state and stats are kept.

        A storm restarts its clock only if that upstream's storm settings changed, capacity
        steps only if they changed; the data universe is rebuilt only if ``seed``,
        ``universe`` or ``cache_s`` changed, and the edge cache is emptied then or when an
        answer shape changed.
        """
        old, now = self.config, self._clock()
        self.config = config
        self._admission.restart_storms(old, config, now)
        for name, gate in self._gates.items():
            new = config.upstreams[name].capacity
            gate.configure(new, restart=new.steps != old.upstreams[name].capacity.steps)
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
            await self._send(name, send, upstream.not_found(request), key)
            return
        limiter = self._admission.admit(upstream, cfg, key, now)
        if isinstance(limiter, Response):
            await self._send(name, send, limiter, key)
            return
        self.stats.started_request(name, key)
        try:
            await self._serve_in_turn(upstream, route, request, key, send, now)
        finally:
            limiter.finish()
            self.stats.finished_request(name, key)

    async def _serve_in_turn(
        self,
        upstream: Upstream,
        route: Route,
        request: Request,
        key: str,
        send: Send,
        arrival: float,
    ) -> None:
        """Wait for a service slot (FIFO), then serve; record the request in the trace."""
        name, gate, service = upstream.name, self._gates[upstream.name], self.stats.service
        if not gate.try_acquire():
            ticket = gate.enqueue()
            service.queued(name, gate.queued)
            await gate.wait_turn(ticket)
        start = self._clock()
        service.started(name, gate.in_service)
        status: int | None = None
        try:
            cfg = self.config.upstreams[name]  # as configured when its service starts
            status = await self._answer(upstream, cfg, route, request, key, send)
        finally:
            gate.release()
            service.finished(name, key, status, (arrival, start, self._clock()))

    async def _answer(
        self,
        upstream: Upstream,
        cfg: UpstreamConfig,
        route: Route,
        request: Request,
        key: str,
        send: Send,
    ) -> int | None:
        """Serve for the sampled latency, then answer; the status sent (``None``: reset)."""
        delay = sample_delay(cfg.latency, self.rng)
        if delay > 0:
            await asyncio.sleep(delay)
        fault = draw_fault(cfg.faults, self.rng)
        if fault is not None:
            self.stats.fault(upstream.name, fault)
            return await self._inject(upstream, cfg, fault, route, request, key, send)
        response = self._render(upstream.name, route, request, key)
        self._note_response(upstream.name, route.endpoint, key, response)
        return await self._send(upstream.name, send, response, key)

    async def _inject(
        self,
        upstream: Upstream,
        cfg: UpstreamConfig,
        fault: str,
        route: Route,
        request: Request,
        key: str,
        send: Send,
    ) -> int | None:
        answer = functools.partial(self._render, upstream.name, route, request, key)
        response = await fault_response(
            fault, cfg.faults, upstream.server_error, answer, self.closing, send
        )
        if response is None:  # the connection was reset
            return None
        return await self._send(upstream.name, send, response, key)

    def _render(self, name: str, route: Route, request: Request, key: str) -> Response:
        """The endpoint's answer, through the edge cache."""
        return self._cache.render(name, route, request, key, self.data)

    def _note_response(self, name: str, endpoint: str, key: str, response: Response) -> None:
        if response.ids is not None:
            self.stats.ids_requested(name, endpoint, response.ids)
        if response.violation is not None:
            self.stats.violation(name, key, response.violation, f"{endpoint}: HTTP 400")

    async def _send(
        self, name: UpstreamName, send: Send, response: Response, key: str | None = None
    ) -> int:
        """Send ``response`` (with quota headers for an identified ``key``); its status."""
        if key is not None and self.config.upstreams[name].capacity.headers:
            response = self._with_quota(name, key, response)
        self.stats.response(name, response.status)
        await send_response(send, response)
        return response.status

    def _with_quota(self, name: UpstreamName, key: str, response: Response) -> Response:
        """``response`` with this upstream's ``x-ratelimit-*`` headers for ``key`` now
        (replacing any it had); unchanged when no window limit applies."""
        cfg = self.config.upstreams[name]
        state = self._admission.window_state(name, cfg, key, self._clock())
        if state is None:
            return response
        quota = self.upstreams[name].quota_headers(*state, dt.datetime.now(dt.UTC))
        kept = [(k, v) for k, v in response.headers if not k.startswith(b"x-ratelimit-")]
        return dataclasses.replace(response, headers=[*kept, *quota])  # cached: never mutate


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
