"""Hidden server capacity: a FIFO queue in front of K service slots, steps and ramps.

Real HTTP on loopback. Service times are scaled down (0.1-0.5 s); bounds are ranges, wide
enough for a busy machine, never the exact figures.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from coinharvest.emulator import CapacityConfig, RunningEmulator
from coinharvest.emulator.capacity import ServiceGate

DASH = "/3xpl/?from=dash"
PING = "/coingecko/api/v3/ping"


async def warm(client: httpx.AsyncClient, connections: int) -> None:
    """Open ``connections`` keep-alive connections, so the test's requests start together."""
    await asyncio.gather(*(client.get(PING) for _ in range(connections)))


async def timed(client: httpx.AsyncClient, path: str) -> tuple[int, float]:
    """Status and client-side latency (s) of one GET."""
    start = time.monotonic()
    response = await client.get(path)
    return response.status_code, time.monotonic() - start


async def service(emu: RunningEmulator, name: str = "3xpl") -> dict[str, Any]:
    stats = await emu.stats()
    result: dict[str, Any] = stats["service"][name]
    return result


async def starts_since(emu: RunningEmulator, t0: float) -> list[float]:
    """Service starts of the traced 3xpl requests, in seconds after monotonic ``t0``."""
    trace = await emu.trace("3xpl")
    epoch = emu.app.stats.started
    return sorted(entry["start_s"] + epoch - t0 for entry in trace["requests"])


async def test_requests_over_capacity_wait_in_a_fifo_queue(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    service_s = 0.1
    await emu.set_upstream("3xpl", capacity={"concurrent": 2}, latency={"fixed_ms": 100})
    await warm(client, 6)
    results = await asyncio.gather(*(timed(client, DASH) for _ in range(6)))
    assert [status for status, _ in results] == [200] * 6
    latencies = sorted(latency for _, latency in results)
    for i, latency in enumerate(latencies):  # about 1x, 1x, 2x, 2x, 3x, 3x the service time
        rounds = i // 2 + 1
        assert rounds * service_s - 0.02 <= latency <= rounds * service_s + 0.08, latencies
    counters = await service(emu)
    assert counters["max_in_service"] == 2 and counters["served"] == 6
    assert counters["max_queued"] == 4 and counters["capacity"] == 2
    assert counters["queued"] == 0 and counters["in_service"] == 0
    trace = (await emu.trace("3xpl"))["requests"]
    assert len(trace) == 6
    assert all(entry["end_s"] - entry["start_s"] >= service_s - 0.001 for entry in trace)
    waits = sorted(entry["start_s"] - entry["arrival_s"] for entry in trace)
    assert waits[1] < 0.02 and all(w > service_s - 0.02 for w in waits[2:]), waits


async def test_a_step_raises_the_capacity_at_its_time(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await warm(client, 6)
    t0 = time.monotonic()
    capacity = {"concurrent": 2, "steps": [{"at_s": 0.15, "concurrent": 6}]}
    await emu.set_upstream("3xpl", capacity=capacity, latency={"fixed_ms": 400})
    requests = [asyncio.create_task(client.get(DASH)) for _ in range(6)]
    await asyncio.sleep(0.05)
    before = await service(emu)
    assert (before["capacity"], before["in_service"], before["queued"]) == (2, 2, 4)
    assert [r.status_code for r in await asyncio.gather(*requests)] == [200] * 6
    starts = await starts_since(emu, t0)
    assert all(start < 0.05 for start in starts[:2]), starts
    assert all(0.15 <= start < 0.21 for start in starts[2:]), starts  # the step, at once
    after = await service(emu)
    assert after["capacity"] == 6 and after["max_in_service"] == 6


async def test_a_ramp_adds_slots_as_it_crosses_whole_numbers(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await warm(client, 3)
    t0 = time.monotonic()
    # 1 slot until 0.1 s, then linearly to 3 by 0.3 s: 2 slots from 0.2 s, 3 from 0.3 s.
    capacity = {"concurrent": 1, "steps": [{"at_s": 0.1, "concurrent": 3, "ramp_s": 0.2}]}
    await emu.set_upstream("3xpl", capacity=capacity, latency={"fixed_ms": 500})
    responses = await asyncio.gather(*(client.get(DASH) for _ in range(3)))
    assert [r.status_code for r in responses] == [200] * 3
    first, second, third = await starts_since(emu, t0)
    assert first < 0.05
    assert 0.2 <= second < 0.26 and 0.3 <= third < 0.36, (first, second, third)


async def test_waiting_requests_start_when_a_live_config_raises_the_capacity(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await warm(client, 3)
    await emu.set_upstream("3xpl", capacity={"concurrent": 1}, latency={"fixed_ms": 300})
    t0 = time.monotonic()
    requests = [asyncio.create_task(client.get(DASH)) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert (await service(emu))["queued"] == 2
    raised_at = time.monotonic() - t0
    patch = {"upstreams": {"3xpl": {"capacity": {"concurrent": 3}}}}
    assert (await client.post("/__emulator__/config", json=patch)).status_code == 200
    assert [r.status_code for r in await asyncio.gather(*requests)] == [200] * 3
    starts = await starts_since(emu, t0)
    assert all(raised_at <= start < raised_at + 0.05 for start in starts[1:]), starts


async def test_changing_steps_restarts_their_clock_and_other_changes_do_not(
    emu: RunningEmulator,
) -> None:
    steps = [{"at_s": 0.1, "concurrent": 4}]
    await emu.set_upstream("3xpl", capacity={"concurrent": 2, "steps": steps})
    assert (await service(emu))["capacity"] == 2
    await asyncio.sleep(0.12)
    assert (await service(emu))["capacity"] == 4
    await emu.set_upstream("3xpl", capacity={"steps": steps, "hidden_rate": 100})
    assert (await service(emu))["capacity"] == 4  # same steps: the clock runs on
    await emu.set_upstream("3xpl", capacity={"steps": [{"at_s": 0.1, "concurrent": 5}]})
    assert (await service(emu))["capacity"] == 2  # new steps: from the start again
    await asyncio.sleep(0.12)
    assert (await service(emu))["capacity"] == 5


async def test_without_a_capacity_section_nothing_queues(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await warm(client, 5)
    await emu.set_upstream("3xpl", latency={"fixed_ms": 100})
    results = await asyncio.gather(*(timed(client, DASH) for _ in range(5)))
    assert all(status == 200 and latency < 0.18 for status, latency in results), results
    counters = await service(emu)
    assert counters["capacity"] is None and counters["max_queued"] == 0
    assert counters["max_in_service"] == 5 and counters["served"] == 5


async def test_trace_endpoint(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    await client.get(DASH)
    await client.get(PING)
    await asyncio.sleep(0.02)
    middle = (await emu.stats())["uptime_s"]
    await client.get(DASH)
    everything = (await client.get("/__emulator__/trace")).json()
    assert everything["recorded"] == 3 and everything["dropped"] == 0
    entry = everything["requests"][0]
    assert set(entry) == {"upstream", "key", "status", "arrival_s", "start_s", "end_s"}
    assert entry["upstream"] == "3xpl" and entry["status"] == 200
    assert entry["arrival_s"] <= entry["start_s"] <= entry["end_s"] <= middle
    only_3xpl = (await client.get("/__emulator__/trace?upstream=3xpl")).json()
    assert [e["upstream"] for e in only_3xpl["requests"]] == ["3xpl", "3xpl"]
    recent = (await client.get(f"/__emulator__/trace?since_s={middle}")).json()
    assert len(recent["requests"]) == 1
    assert recent == await emu.trace(since_s=middle)
    for bad in ("upstream=coingeko", "since_s=soon", "since_s=nan", "limit=5"):
        response = await client.get(f"/__emulator__/trace?{bad}")
        assert response.status_code == 400 and "error" in response.json()


async def test_a_cancelled_wait_gives_up_its_place_or_its_slot() -> None:
    gate = ServiceGate(CapacityConfig(concurrent=1), time.monotonic)
    assert gate.try_acquire()
    order: list[str] = []

    async def queued(name: str) -> None:
        await gate.wait_turn(gate.enqueue())
        order.append(name)

    first, second, third = (asyncio.create_task(queued(n)) for n in ("a", "b", "c"))
    await asyncio.sleep(0)
    assert gate.queued == 3 and not gate.try_acquire()
    first.cancel()
    await asyncio.sleep(0)
    assert gate.queued == 2
    gate.release()  # to "b"; "c" still waits
    second.cancel()  # handed a slot but cancelled before it ran: the slot goes on to "c"
    await asyncio.gather(first, second, third, return_exceptions=True)
    assert order == ["c"] and gate.in_service == 1 and gate.queued == 0
    gate.release()
    assert gate.in_service == 0 and gate.try_acquire()
