"""Serving an ASGI app with uvicorn inside the caller's event loop (emulator and service).

uvicorn's own `Server.serve()` installs signal handlers and a 0.1 s tick loop; both the
emulator (inside tests and `demo`) and the service (which owns SIGINT/SIGTERM itself) need
the server without them. `bind` and `start` are that shared part; each caller keeps its own
shutdown policy.
"""

from __future__ import annotations

import socket

import uvicorn

__all__ = ["bind", "start"]


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on `host`:`port` (0: a free port). Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted sockets
    # whose proto says TCP, and without it Nagle + delayed ACK add 40 ms per response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


async def start(server: uvicorn.Server, sock: socket.socket) -> None:
    """Start `server` accepting on `sock` without uvicorn's main loop or signal handlers."""
    if not server.config.loaded:
        server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    await server.startup(sockets=[sock])
