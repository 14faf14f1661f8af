"""Fixtures for source tests: a real emulator and a canned loopback server (builders: sourcekit)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from coinharvest.emulator import EmulatorConfig, RunningEmulator, run_emulator

from .loopback import Loopback, loopback


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    """A permissive emulator (no limits, no faults) with the default coins."""
    async with run_emulator(EmulatorConfig(seed=7)) as running:
        yield running


@pytest.fixture
async def canned() -> AsyncIterator[Loopback]:
    """A loopback server answering what the test sets."""
    async with loopback() as server:
        yield server
