"""Fixtures for service mode: a database filled by real runs against the emulator, a way to
start ``coinharvest run``/``serve`` as a subprocess, and a Prometheus text reader."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.coins import load_coins
from coinharvest.config import load_settings
from coinharvest.emulator import EmulatorConfig, RunningEmulator, run_emulator
from coinharvest.engine.build import build_engine
from coinharvest.models import RunSummary
from coinharvest.service.api import ServiceState, create_app
from coinharvest.service.metrics import Metrics
from coinharvest.sources.base import close_sources
from coinharvest.sources.registry import build_sources
from coinharvest.storage import Store, open_database

HERE = Path(__file__).parent
ENV_PREFIX = {
    "coingecko": "COINGECKO",
    "3xpl": "THREEXPL",
    "blockchair": "BLOCKCHAIR",
    "nearblocks": "NEARBLOCKS",
    "nano": "NANO",
}
#: Client settings that make a run of the 11 coins short but with a real timeline: several
#: jobs per source, waits in lanes, the global cap at work.
FAST_CLIENT = {
    "MAX_COLLECTION_CONCURRENCY": "4",
    "COINGECKO_BATCH_SIZE": "3",
    "COINGECKO_MIN_INTERVAL_MS": "150",
    "COINGECKO_RATE_LIMIT_PER_MINUTE": "600",
    "THREEXPL_BATCH_SIZE": "1",
    "MAX_THREEXPL_CONCURRENCY": "2",
    "THREEXPL_MIN_INTERVAL_MS": "100",
    "THREEXPL_RATE_LIMIT_PER_MINUTE": "600",
    "NEARBLOCKS_MIN_INTERVAL_MS": "100",
    "NEARBLOCKS_RATE_LIMIT_PER_MINUTE": "600",
    "NANO_MIN_INTERVAL_MS": "100",
    "HTTP_TIMEOUT_SECONDS": "5",
}
TOKEN = "test-token-0123456789abcdef"


def cli_command() -> list[str]:
    """The command line a user runs."""
    return [sys.executable, "-m", "coinharvest"]


def emulator_config(latency_ms: float = 120.0, jitter_ms: float = 80.0) -> EmulatorConfig:
    """Permissive limits, the given latency on every upstream."""
    upstreams = {"latency": {"fixed_ms": latency_ms, "jitter_ms": jitter_ms}}
    from coinharvest.emulator.config import UPSTREAMS, merge_config

    return merge_config(
        EmulatorConfig(seed=7, cache_s=0), {"upstreams": {name: upstreams for name in UPSTREAMS}}
    )


# --------------------------------------------------------------------------- filled database


@dataclass
class Filled:
    """A SQLite database holding `summaries` (real runs), and the metrics they produced."""

    path: Path
    summaries: list[RunSummary]
    exposition: str

    @property
    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.path}"


async def _fill(path: Path, runs: int) -> Filled:
    settings = load_settings(FAST_CLIENT, env_file=None)
    coins = load_coins()
    metrics = Metrics(["coingecko", "3xpl", "blockchair", "nearblocks", "nano"])
    async with run_emulator(emulator_config()) as emu:
        await emu.set_upstream("3xpl", faults={"error_503": 0.15})
        names = {s for c in coins for chain in c.chains for s in chain}
        sources = build_sources(settings, names=names, base_urls=emu.base_urls)
        async with await Store.from_url(f"sqlite+aiosqlite:///{path}") as store:
            engine = build_engine(settings, sources, store, observer=metrics)
            summaries = [await engine.run(coins, trigger="schedule") for _ in range(runs)]
        await close_sources(engine.sources.values())
    return Filled(path, summaries, metrics.exposition().decode())


@pytest.fixture(scope="session")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """Four real runs of the 11 coins against the emulator (3xpl answers 503 now and then)."""
    path = tmp_path_factory.mktemp("filled") / "filled.db"
    done: list[Filled] = []
    errors: list[BaseException] = []

    def work() -> None:  # own thread, own loop: independent of the tests' loops
        try:
            done.append(asyncio.run(_fill(path, runs=4)))
        except BaseException as exc:  # handed to the test thread below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(120)
    if errors:
        raise errors[0]
    assert done, "filling the database took over 120 s"
    return done[0]


@pytest.fixture
async def db(filled: Filled) -> AsyncIterator[AsyncEngine]:
    """The filled database, opened in the test's loop."""
    engine = await open_database(filled.url)
    yield engine
    await engine.dispose()


def client_for(state: ServiceState, **kwargs: Any) -> httpx.AsyncClient:
    """An in-process client of the API over `state` (`create_app` keyword arguments), as
    ``http://localhost`` (a trusted host by default)."""
    transport = httpx.ASGITransport(app=create_app(state, **kwargs))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


# --------------------------------------------------------------------------- metrics text


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client's parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def total(
    parsed: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in parsed.items() if n == name and want <= ls)


# --------------------------------------------------------------------------- service process


@dataclass
class Service:
    """A ``coinharvest`` subprocess and what it printed on stderr."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    url: str | None = None

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait until a stderr line matches `pattern` (regex); fail with the log otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        while loop.time() < deadline:
            for line in self.lines[seen:]:
                if m := re.search(pattern, line):
                    return m
            seen = len(self.lines)
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}; log:\n{self.log}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)


def service_env(emu: RunningEmulator | None, db: Path, **extra: str) -> dict[str, str]:
    """The environment of a service subprocess: sources at `emu`, SQLite at `db`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not re.match(r"^(.*_BASE_URL|NANO_RPC_URL|DATABASE_URL|COINHARVEST_.*|HTTP_.*)$", k)
    }
    env.update(COINHARVEST_DB=str(db), HTTP_PORT="0", DEBUG="")
    if emu is not None:
        for name, url in emu.base_urls.items():
            env[f"{ENV_PREFIX[name]}_BASE_URL"] = url
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def service(
    args: list[str], env: dict[str, str], *, http: bool = True
) -> AsyncIterator[Service]:
    """Start ``coinharvest ARGS``; with `http`, wait until it listens (``Service.url``)."""
    proc = await asyncio.create_subprocess_exec(
        *cli_command(),
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    svc = Service(proc)

    async def pump() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            svc.lines.append(raw.decode(errors="replace").rstrip())

    reader = asyncio.create_task(pump())
    try:
        if http:
            m = await svc.wait_for_line(r"HTTP API and dashboard on (http://\S+?)/ ", timeout=40)
            svc.url = m.group(1)
        yield svc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await reader


@pytest.fixture
async def emu_fast() -> AsyncIterator[RunningEmulator]:
    """An emulator with permissive limits and ~0.1 s latency."""
    async with run_emulator(emulator_config()) as running:
        yield running
