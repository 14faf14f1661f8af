"""Latency, injected faults at their configured rates, and scheduled 429 storms."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import httpx

from coinharvest.emulator import RunningEmulator

MARKETS = "/coingecko/api/v3/coins/markets?vs_currency=usd&ids=bitcoin,dash"


def _classify(response: httpx.Response) -> str:
    if response.status_code == 200:
        try:
            json.loads(response.content)
        except ValueError:
            return "bad_json"
        return "ok"
    if response.headers["content-type"].startswith("text/html"):
        return f"html_{response.status_code}"
    return f"json_{response.status_code}"


async def test_fault_rates_over_400_requests(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    faults = {"error_500": 0.1, "error_502": 0.1, "error_503": 0.1}
    faults |= {"malformed_json": 0.1, "truncated_json": 0.1, "html_403": 0.1}
    await emu.set_upstream("coingecko", faults=faults)
    seen: Counter[str] = Counter()
    for _ in range(20):
        batch = await asyncio.gather(*(client.get(MARKETS) for _ in range(20)))
        seen.update(_classify(response) for response in batch)
    injected = (await emu.stats())["faults"]["coingecko"]
    assert seen["json_500"] == injected["error_500"]
    assert seen["html_502"] == injected["error_502"]
    assert seen["html_503"] == injected["error_503"]
    assert seen["html_403"] == injected["html_403"]
    assert seen["bad_json"] == injected["malformed_json"] + injected["truncated_json"]
    for kind, count in injected.items():  # expected 40 each, sd about 6
        assert 20 <= count <= 60, (kind, count)
    assert 130 <= seen["ok"] <= 190  # expected 160


async def test_connection_resets(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    await emu.set_upstream("blockchair", faults={"reset": 0.2})
    errors = 0
    for _ in range(100):
        try:
            (await client.get("/blockchair/dash/stats?key=k")).raise_for_status()
        except httpx.TransportError:
            errors += 1
    assert errors == (await emu.stats())["faults"]["blockchair"]["reset"]
    assert 8 <= errors <= 32  # expected 20, sd 4


async def test_hangs_outlast_the_client_timeout(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("nearblocks", faults={"hang": 0.5, "hang_s": 0.3})

    async def fetch() -> str:
        try:
            # Only the answer may time out: 40 connections opening at once on a loaded
            # machine must not be taken for hangs.
            await client.get("/nearblocks/v1/stats", timeout=httpx.Timeout(0.1, connect=5.0))
        except httpx.ReadTimeout:
            return "timeout"
        return "answered"

    outcomes = Counter(await asyncio.gather(*(fetch() for _ in range(40))))
    assert outcomes["timeout"] == (await emu.stats())["faults"]["nearblocks"]["hang"]
    assert 8 <= outcomes["timeout"] <= 32  # expected 20, sd about 3


async def test_latency_fixed_plus_jitter(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    latency = {"fixed_ms": 20, "jitter_ms": 10, "distribution": "uniform"}
    await emu.set_upstream("nano", latency=latency)
    elapsed = []
    for _ in range(15):
        start = time.monotonic()
        await client.post("/nano", json={"action": "block_count"})
        elapsed.append(time.monotonic() - start)
    assert min(elapsed) >= 0.020
    assert 0.022 <= sum(elapsed) / len(elapsed) <= 0.040


async def test_storm_window(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    await emu.set_upstream("nearblocks", faults={"storm": {"start_s": 0.15, "duration_s": 0.3}})
    start, statuses = time.monotonic(), []
    while time.monotonic() - start < 0.6:
        response = await client.get("/nearblocks/v1/stats")
        statuses.append((time.monotonic() - start, response.status_code))
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
        await asyncio.sleep(0.02)
    assert all(code == 200 for at, code in statuses if at < 0.14)
    assert all(code == 429 for at, code in statuses if 0.16 < at < 0.44)
    assert all(code == 200 for at, code in statuses if at > 0.47)
    stats = await emu.stats()
    storm = stats["rate_limited"]["by_upstream"]["nearblocks"]["storm"]
    assert storm == sum(code == 429 for _, code in statuses)
    # Polling through the storm ignores its Retry-After: that is the client's fault.
    assert stats["violations"]["by_kind"]["early_retry"] >= storm - 2


async def test_storm_then_client_honouring_retry_after(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("3xpl", faults={"storm": {"duration_s": 0.2, "retry_after_s": 1}})
    rejected = await client.get("/3xpl/?from=bitcoin")
    assert rejected.status_code == 429 and rejected.headers["retry-after"] == "1"
    await asyncio.sleep(1.0)
    assert (await client.get("/3xpl/?from=bitcoin")).status_code == 200
    assert (await emu.stats())["violations"]["total"] == 0
