"""Limits: enforced per key on the server's monotonic clock, to the millisecond."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from coinharvest.emulator import RunningEmulator

from . import samples
from .rawhttp import RawClient

PING = "/coingecko/api/v3/ping"
INTERVAL_S = 0.050


def arrived(emu: RunningEmulator) -> float:
    """When the emulator saw our last request start (same monotonic clock: in-process).

    Timing from the server's view of the previous start removes that request's own
    client-to-server delay from the gap; only the next request's (~0.25 ms) remains, so
    ``TRANSIT_S`` is subtracted from the plan.
    """
    return emu.app.stats.last_arrival["coingecko"]["ip:127.0.0.1"]


TRANSIT_S = 0.00025


@pytest.fixture
async def raw(emu: RunningEmulator) -> AsyncIterator[RawClient]:
    """A lean keep-alive client (see rawhttp.py: httpx is too jittery for 1 ms), GC paused."""
    client = await RawClient.connect(emu.host, emu.port)
    await client.get(PING)  # warm the connection
    gc.disable()
    try:
        yield client
    finally:
        gc.enable()
        await client.close()


async def test_spacing_one_ms_too_close_is_rejected_and_counted(
    emu: RunningEmulator, raw: RawClient
) -> None:
    await emu.set_upstream("coingecko", limits={"min_interval_ms": 50, "retry_after": "never"})
    await emu.reset()
    next_at, caught, gaps = time.monotonic() + 0.02, 0, []
    for _ in range(10):  # a rare scheduling hiccup makes a round land late: retry it
        admitted, _ = await raw.get_at(next_at, PING)
        assert admitted.status == 200
        start = arrived(emu)
        early, _ = await raw.get_at(start + INTERVAL_S - 0.001 - TRANSIT_S, PING)
        gap = arrived(emu) - start
        gaps.append(gap)
        # The decision must match the spacing the server saw, exactly.
        assert early.status == (429 if gap < INTERVAL_S else 200), f"gap {gap * 1000:.3f} ms"
        if early.status == 429:
            assert json.loads(early.body) == samples.COINGECKO_429
            caught += 1
            if caught == 5:
                break
        next_at = arrived(emu) + INTERVAL_S + 0.010
    assert caught == 5, [f"{gap * 1000:.3f}" for gap in gaps]
    assert all(gap > INTERVAL_S - 0.002 for gap in gaps)  # really only ~1 ms too close
    stats = await emu.stats()
    assert stats["violations"]["by_kind"] == {"spacing": 5}
    assert stats["rate_limited"]["by_upstream"]["coingecko"] == {"spacing": 5}
    assert all("min 50 ms" in v["detail"] for v in stats["violations"]["recent"])


async def test_spacing_respected_is_never_rejected(emu: RunningEmulator, raw: RawClient) -> None:
    await emu.set_upstream("coingecko", limits={"min_interval_ms": 50})
    await emu.reset()
    await raw.get(PING)
    for _ in range(20):
        response, _ = await raw.get_at(arrived(emu) + INTERVAL_S + 0.001 - TRANSIT_S, PING)
        assert response.status == 200
    stats = await emu.stats()
    assert stats["violations"]["total"] == 0
    assert stats["min_spacing_ms"]["coingecko"]["ip:127.0.0.1"] >= 50.0


async def test_rejected_requests_do_not_count_as_starts(
    emu: RunningEmulator, raw: RawClient
) -> None:
    await emu.set_upstream("coingecko", limits={"min_interval_ms": 50, "retry_after": "never"})
    first, _ = await raw.get_at(time.monotonic() + 0.06, PING)
    assert first.status == 200
    start = arrived(emu)
    assert (await raw.get_at(start + 0.030, PING))[0].status == 429
    # 52 ms after the admitted start (about 22 ms after the rejected one): admitted.
    assert (await raw.get_at(start + 0.052, PING))[0].status == 200


async def test_rolling_window_and_coingecko_headers(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    limits = {"rate": 5, "window_s": 0.3, "retry_after": "always"}
    await emu.set_upstream("coingecko", limits=limits)
    start = time.monotonic()
    for _ in range(5):
        assert (await client.get(PING)).status_code == 200
    rejected = await client.get(PING)
    assert rejected.status_code == 429
    assert rejected.headers["x-ratelimit-limit"] == "5"
    assert rejected.headers["x-ratelimit-remaining"] == "0"
    reset = rejected.headers["x-ratelimit-reset"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000", reset)
    assert rejected.headers["retry-after"] == "1"
    await asyncio.sleep(max(0.0, start + 0.3 + 0.01 - time.monotonic()))
    # The oldest start has left the window; (this request is early for Retry-After: 1.)
    assert (await client.get(PING)).status_code == 200
    kinds = (await emu.stats())["violations"]["by_kind"]
    assert kinds == {"window": 1, "early_retry": 1}


async def test_max_in_flight(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    await emu.set_upstream("coingecko", limits={"max_in_flight": 2}, latency={"fixed_ms": 100})
    first = [asyncio.create_task(client.get(PING)) for _ in range(2)]
    await asyncio.sleep(0.03)
    third = await client.get(PING)
    statuses = sorted([r.status_code for r in await asyncio.gather(*first)] + [third.status_code])
    assert statuses == [200, 200, 429]
    stats = await emu.stats()
    assert stats["violations"]["by_kind"] == {"concurrency": 1}
    assert stats["max_in_flight"]["coingecko"]["ip:127.0.0.1"] == 2


async def test_daily_cap(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    await emu.set_upstream("blockchair", limits={"daily_cap": 3, "status": 402})
    for _ in range(3):
        assert (await client.get("/blockchair/stats?key=k")).status_code == 200
    capped = await client.get("/blockchair/stats?key=k")
    assert capped.status_code == 402
    assert capped.json()["context"]["code"] == 402 and capped.json()["data"] is None
    assert 0 < int(capped.headers["retry-after"]) <= 86_400
    assert (await emu.stats())["violations"]["by_kind"] == {"daily": 1}


async def test_limits_are_per_key_with_overrides(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream(
        "coingecko",
        limits={"min_interval_ms": 10_000, "retry_after": "never"},
        key_limits={"vip": {}},
    )

    async def ping(key: str) -> int:
        return (await client.get(PING, headers={"x-cg-demo-api-key": key})).status_code

    assert [await ping("alice"), await ping("alice")] == [200, 429]
    assert await ping("bob") == 200
    assert [await ping("vip") for _ in range(5)] == [200] * 5
    stats = await emu.stats()
    assert stats["requests"]["coingecko"]["/ping"] == {"alice": 2, "bob": 1, "vip": 5}


@pytest.mark.parametrize(
    ("policy", "low", "high"), [("never", 0, 0), ("always", 100, 100), (0.5, 30, 70)]
)
async def test_retry_after_policy(
    emu: RunningEmulator, client: httpx.AsyncClient, policy: object, low: int, high: int
) -> None:
    await emu.set_upstream("coingecko", limits={"min_interval_ms": 60_000, "retry_after": policy})
    await client.get(PING)
    rejected = [await client.get(PING) for _ in range(100)]
    assert {r.status_code for r in rejected} == {429}
    with_header = sum("retry-after" in r.headers for r in rejected)
    assert low <= with_header <= high


async def test_early_retry_is_a_violation(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    await emu.set_upstream("3xpl", limits={"rate": 1, "window_s": 10, "retry_after": "always"})
    assert (await client.get("/3xpl/?from=dash")).status_code == 200
    rejected = await client.get("/3xpl/?from=dash")
    assert rejected.status_code == 429 and rejected.json()["context"]["code"] == 429
    assert rejected.headers["retry-after"] == "10"
    await asyncio.sleep(0.07)
    assert (await client.get("/3xpl/?from=dash")).status_code == 429
    assert (await emu.stats())["violations"]["by_kind"] == {"window": 2, "early_retry": 1}


async def test_upstream_specific_rejections(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    strict = {"rate": 1, "window_s": 60, "retry_after": "always"}
    await emu.configure(
        {
            "upstreams": {
                "blockchair": {"limits": {**strict, "status": 430}},
                "nearblocks": {"limits": strict},
                "nano": {"limits": strict},
            }
        }
    )
    for _ in range(2):
        blockchair = await client.get("/blockchair/bitcoin/stats?key=k")
        nearblocks = await client.get("/nearblocks/v1/stats")
        nano = await client.post("/nano", json={"action": "block_count"})
    assert blockchair.status_code == 430
    assert blockchair.json()["context"]["error"].startswith(
        "Your IP address is temporary blacklisted"
    )
    assert nearblocks.status_code == 429 and nearblocks.json() == samples.NEARBLOCKS_429
    assert "retry-after" not in nearblocks.headers  # NearBlocks never sends one
    assert nano.status_code == 429 and nano.json() == samples.NANO_429
