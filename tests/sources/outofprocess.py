"""The emulator in its own process, for tests that time requests to the millisecond.

In-process, the emulator shares the event loop with the client: while it builds a large
answer (250 coins of JSON) the client's next request waits in the socket, and the server
stamps its arrival late, so two requests sent exactly ``min_interval`` apart can look a
dozen milliseconds too close. A separate process gives the server its own CPU, as the real
upstreams have.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from coinharvest.emulator import base_urls_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmulatorProcess:
    """Handle: `base_urls` per source, and `stats()` from the control plane."""

    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.base_urls = base_urls_for(self.base_url)

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.base_url}/__emulator__/stats")
            result: dict[str, Any] = response.json()
            return result


@asynccontextmanager
async def emulator_process(config: dict[str, Any], tmp: Path) -> AsyncIterator[EmulatorProcess]:
    """Run ``python -m coinharvest.emulator`` with `config` (a config document) until exit."""
    path = tmp / "emulator.json"
    path.write_text(json.dumps(config))
    port = _free_port()
    command = [sys.executable, "-m", "coinharvest.emulator", "--port", str(port),
               "--config", str(path)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    handle = EmulatorProcess(port)
    try:
        await _wait_ready(handle, proc)
        yield handle
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _wait_ready(handle: EmulatorProcess, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with status {proc.returncode}")
        try:
            await handle.stats()
            return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise RuntimeError("emulator did not start within 10 s")
