"""Fixtures: a real emulator on a free loopback port and an httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from coinharvest.emulator import EmulatorConfig, RunningEmulator, run_emulator


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    """An emulator with default (permissive) settings and 20 synthetic coins."""
    async with run_emulator(EmulatorConfig(seed=42, universe=20)) as running:
        yield running


@pytest.fixture
async def client(emu: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """A client rooted at the emulator (paths like ``/coingecko/api/v3/ping``)."""
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=emu.base_url, timeout=5.0, limits=limits) as http:
        yield http
