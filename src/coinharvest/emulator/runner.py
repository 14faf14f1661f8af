"""Running the emulator: in-process (:func:`run_emulator`) or as a service (:func:`serve`).

Example::

    async with run_emulator(EmulatorConfig(universe=100)) as emu:
        async with httpx.AsyncClient(base_url=emu.base_urls["coingecko"]) as client:
            await client.get("/ping")
        await emu.set_upstream("coingecko", limits={"min_interval_ms": 50})
        stats = await emu.stats()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from coinharvest.emulator.app import EmulatorApp
from coinharvest.emulator.config import UPSTREAMS, EmulatorConfig, UpstreamName, merge_config
from coinharvest.loopserver import bind, start

__all__ = ["RunningEmulator", "base_urls_for", "run_emulator", "serve", "uvicorn_config"]


def base_urls_for(base_url: str) -> dict[str, str]:
    """The base URL a client uses for each upstream, given the server's root URL."""
    return {
        "coingecko": f"{base_url}/coingecko/api/v3",
        "3xpl": f"{base_url}/3xpl",
        "blockchair": f"{base_url}/blockchair",
        "nearblocks": f"{base_url}/nearblocks",
        "nano": f"{base_url}/nano",
    }


class _StampingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, noting when each request's first bytes were parsed.

    The app reads it as ``scope["state"]["arrival"]`` (monotonic seconds). Stamping here,
    not when the app's task gets to run, keeps a busy event loop (say, serialising a
    250-coin answer) from shifting one arrival late and so faking a spacing violation.
    """

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["state"]["arrival"] = time.monotonic()


def uvicorn_config(app: EmulatorApp, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn settings tuned for throughput: httptools, no access log, no lifespan."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_StampingProtocol,
        ws="none",
        lifespan="off",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        backlog=4096,
        timeout_graceful_shutdown=2,
        **options,
    )


async def _stop(server: uvicorn.Server, grace_s: float = 2.0) -> None:
    """Stop accepting, let in-flight responses finish (up to ``grace_s``), then cancel."""
    for listener in server.servers:
        listener.close()
    state = server.server_state
    for connection in list(state.connections):
        connection.shutdown()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while (state.connections or state.tasks) and loop.time() < deadline:
        await asyncio.sleep(0.005)
    for task in list(state.tasks):
        task.cancel()
    for listener in server.servers:
        await listener.wait_closed()


class RunningEmulator:
    """Handle on an emulator started by :func:`run_emulator`.

    :ivar app: the ASGI app (its ``config``, ``stats`` and ``data`` are live).
    :ivar base_url: ``http://127.0.0.1:<port>``.
    :ivar base_urls: per source name (``coingecko``, ``3xpl``, ``blockchair``,
        ``nearblocks``, ``nano``), the base URL a client should use.
    """

    def __init__(self, app: EmulatorApp, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.base_url = f"http://{host}:{port}"
        self.base_urls = base_urls_for(self.base_url)

    def __repr__(self) -> str:
        return f"<RunningEmulator {self.base_url} requests={self.app.stats.requests_total}>"

    @property
    def config(self) -> EmulatorConfig:
        """The configuration in force."""
        return self.app.config

    async def stats(self) -> dict[str, Any]:
        """The same document as ``GET /__emulator__/stats``."""
        return self.app.snapshot()

    async def trace(
        self, upstream: UpstreamName | None = None, since_s: float | None = None
    ) -> dict[str, Any]:
        """The same document as ``GET /__emulator__/trace`` (served requests over time)."""
        return self.app.trace(upstream, since_s)

    async def reset(self) -> None:
        """Clear counters and limiter state, as ``POST /__emulator__/reset``."""
        self.app.reset()

    async def configure(
        self, patch: EmulatorConfig | Mapping[str, Any], *, replace: bool = False
    ) -> EmulatorConfig:
        """Apply a configuration now, as ``POST /__emulator__/config``.

        An :class:`EmulatorConfig` replaces the current one; a mapping (partial document in
        the config-file schema) is deep-merged into it, or into the defaults if ``replace``.
        """
        if isinstance(patch, EmulatorConfig):
            config = patch
        else:
            config = merge_config(EmulatorConfig() if replace else self.app.config, dict(patch))
        self.app.configure(config)
        return config

    async def set_upstream(self, name: UpstreamName, **sections: Any) -> EmulatorConfig:
        """Merge settings into one upstream, e.g. ``set_upstream("nano", faults={"reset": 0.1})``.

        Keyword names are the sections of :class:`~coinharvest.emulator.config.UpstreamConfig`
        (``limits``, ``key_limits``, ``latency``, ``faults``, ``auth``, ``shape``,
        ``capacity``); values are mappings or config objects.
        """
        if name not in UPSTREAMS:
            raise ValueError(f"unknown upstream {name!r}; expected one of {UPSTREAMS}")
        patch = {
            section: value.model_dump() if hasattr(value, "model_dump") else value
            for section, value in sections.items()
        }
        return await self.configure({"upstreams": {name: patch}})


@contextlib.asynccontextmanager
async def run_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningEmulator]:
    """Serve the emulator on ``host`` (port 0: a free one) inside the running event loop.

    Yields once the server accepts connections. On exit, hanging requests are released,
    in-flight responses get up to 2 s to finish, and the port is closed. Signal handling is
    left to the host program.

    :raises OSError: if the address cannot be bound.
    """
    app = EmulatorApp(config)
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn_config(app, host, bound_port, log_config=None, log_level="warning")
    )
    try:
        await start(server, sock)
        yield RunningEmulator(app, host, bound_port)
    finally:
        app.closing.set()
        await _stop(server)
        sock.close()


def serve(config: EmulatorConfig, host: str, port: int) -> None:
    """Run the emulator in the foreground until SIGINT/SIGTERM (uses uvloop when installed)."""
    app = EmulatorApp(config)
    server = uvicorn.Server(uvicorn_config(app, host, port, log_level="info"))
    server.run()
