"""Shared plumbing of the dynamic-limits benchmarks (W6 `capacity_step.py`, W7
`hidden_rate.py`, W8 `quota_month.py`).

- `EmulatorProcess`: ``python -m coinharvest.emulator`` in its own process, driven over its
  control plane (config, reset, stats, trace). Its clock is ``time.monotonic`` (Linux
  ``CLOCK_MONOTONIC``, shared by every process), so `reset` and `configure` return the
  monotonic time at which the emulator acted (the midpoint of the round trip, about a
  millisecond either way) and the bench can put its own samples on the emulator's axis.
- `run_cli`: ``python -m coinharvest collect`` as users run it, in its own process, with a
  clean environment (no coinharvest variable of the developer's leaks in).
- `write_coins`, `db_attempts`: the coins file the CLI reads, and the attempts its SQLite
  database recorded.
- `scaled_tuning`: a controller's constants on a faster clock (every ``*_s`` field times
  the scale, every ``*_per_minute`` field divided by it).
- `percentile`, `markdown_table`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from coinharvest.emulator import base_urls_for

__all__ = [
    "ROOT",
    "Attempt",
    "CliResult",
    "EmulatorProcess",
    "clean_env",
    "db_attempts",
    "free_port",
    "markdown_table",
    "percentile",
    "run_cli",
    "scaled_tuning",
    "write_coins",
]

ROOT = Path(__file__).resolve().parents[1]
_PREFIXES = ("COINGECKO_", "THREEXPL_", "BLOCKCHAIR_", "NEARBLOCKS_", "NANO_", "MAX_")
_DROP = {
    "COINS_FILE",
    "COINHARVEST_DB",
    "DATABASE_URL",
    "DEBUG",
    "ADAPTIVE_LIMITS",
    "COLLECT_TIMEOUT_MINUTES",
    "MAX_RETRIES",
    "HTTP_TIMEOUT_SECONDS",
}

T = TypeVar("T")


def free_port() -> int:
    """A TCP port nobody listens on now (loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """The environment without any coinharvest variable a developer may have set."""
    return {k: v for k, v in os.environ.items() if k not in _DROP and not k.startswith(_PREFIXES)}


class EmulatorProcess:
    """The emulator in a subprocess (``async with EmulatorProcess(config) as emu``).

    :param config: the configuration document (the ``--config`` schema).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.urls = base_urls_for(self.root)
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> EmulatorProcess:
        self._tmp = tempfile.TemporaryDirectory()
        path = Path(self._tmp.name) / "emulator.json"
        path.write_text(json.dumps(self.config), encoding="utf-8")
        command = [sys.executable, "-m", "coinharvest.emulator", "--port", str(self.port)]
        self._proc = subprocess.Popen(
            [*command, "--config", str(path)],
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._client = httpx.AsyncClient(base_url=self.root, timeout=30.0)
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            try:
                if (await self._client.get("/__emulator__/stats")).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        await self.__aexit__(None, None, None)
        raise RuntimeError(f"the emulator at {self.root} did not start within 30 s")

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def client(self) -> httpx.AsyncClient:
        """The control-plane client (after ``__aenter__``)."""
        if self._client is None:
            raise RuntimeError("the emulator is not running")
        return self._client

    async def _timed(self, method: str, path: str, body: Any = None) -> float:
        before = time.monotonic()
        answer = await self.client.request(method, path, json=body)
        after = time.monotonic()
        if answer.status_code != 200:
            raise RuntimeError(f"{method} {path}: HTTP {answer.status_code}: {answer.text}")
        return (before + after) / 2

    async def configure(self, patch: Mapping[str, Any]) -> float:
        """Deep-merge `patch` into the configuration; the monotonic time it took effect."""
        return await self._timed("POST", "/__emulator__/config", dict(patch))

    async def reset(self) -> float:
        """Clear counters, limiter state and the trace; the monotonic time of the new epoch
        (the trace's time zero)."""
        return await self._timed("POST", "/__emulator__/reset")

    async def stats(self) -> dict[str, Any]:
        """``GET /__emulator__/stats``."""
        answer = await self.client.get("/__emulator__/stats")
        answer.raise_for_status()
        document: dict[str, Any] = answer.json()
        return document

    async def trace(self, upstream: str | None = None) -> list[dict[str, Any]]:
        """The served requests (``GET /__emulator__/trace``), oldest first.

        :raises RuntimeError: the trace dropped requests (it keeps the last 100,000).
        """
        params = {"upstream": upstream} if upstream else {}
        answer = await self.client.get("/__emulator__/trace", params=params)
        answer.raise_for_status()
        document = answer.json()
        if document["dropped"]:
            raise RuntimeError(f"the emulator's trace dropped {document['dropped']} requests")
        requests: list[dict[str, Any]] = document["requests"]
        return requests

    async def wait_for_requests(self, upstream: str, timeout_s: float = 60.0) -> None:
        """Return once `upstream` has seen a request (polled every 2 ms)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stats = await self.stats()
            if stats["requests"].get(upstream):
                return
            await asyncio.sleep(0.002)
        raise RuntimeError(f"no request reached {upstream} within {timeout_s:g} s")


@dataclass(frozen=True, slots=True)
class CliResult:
    """One ``coinharvest collect``: exit status, output, and when it ran (monotonic)."""

    returncode: int
    stdout: str
    stderr: str
    started: float
    wall_s: float


async def run_cli(
    env: Mapping[str, str], cwd: Path, *, timeout_s: float = 900.0, args: Sequence[str] = ()
) -> CliResult:
    """``python -m coinharvest collect`` with exactly `env` (plus nothing else)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coinharvest",
        "collect",
        *args,
        env=dict(env),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    wall = time.monotonic() - started
    code = proc.returncode if proc.returncode is not None else -1
    text_err = err.decode(errors="replace")
    if "Traceback" in text_err:
        print(text_err[-3000:], file=sys.stderr)
    return CliResult(code, out.decode(errors="replace"), text_err, started, wall)


def write_coins(path: Path, coins: Sequence[tuple[str, Mapping[str, str]]]) -> Path:
    """A coins file: one ``[[coin]]`` per ``(symbol, {source: id})``."""
    blocks = []
    for symbol, ids in coins:
        pairs = ", ".join(f'"{source}" = "{ident}"' for source, ident in ids.items())
        blocks.append(f'[[coin]]\nsymbol = "{symbol}"\nname = "{symbol}"\nids = {{ {pairs} }}\n')
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class Attempt:
    """One job attempt as the client recorded it (run-relative seconds)."""

    source: str
    started_s: float | None
    ended_s: float | None
    status: str
    error: str | None


def db_attempts(db: Path) -> list[Attempt]:
    """The attempts of the last run stored in the SQLite database `db`."""
    with sqlite3.connect(db) as conn:
        run = conn.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
        rows = conn.execute(
            "SELECT source, started_s, ended_s, status, error FROM job_events WHERE run_id = ?",
            (run[0],),
        ).fetchall()
    return [Attempt(*row) for row in rows]


def scaled_tuning(tuning: T, scale: float) -> T:
    """`tuning` (a frozen dataclass of constants) on a clock `scale` times as fast: every
    ``*_s`` field multiplied by `scale`, every ``*_per_minute`` field divided by it."""
    changes: dict[str, float] = {}
    for field in dataclasses.fields(tuning):  # type: ignore[arg-type]
        value = getattr(tuning, field.name)
        if field.name.endswith("_s"):
            changes[field.name] = value * scale
        elif field.name.endswith("_per_minute"):
            changes[field.name] = value / scale
    return dataclasses.replace(tuning, **changes)  # type: ignore[type-var]


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0-1) of `values`, nearest rank (nan when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
