"""Hidden rate limit (``capacity.hidden_rate``) and quota headers (``capacity.headers``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time

import httpx

from coinharvest.emulator import RunningEmulator
from coinharvest.sources.retry_after import (
    parse_quota_spent,
    parse_rate_headers,
    parse_retry_after,
)

from . import samples

PING = "/coingecko/api/v3/ping"
DASH = "/3xpl/?from=dash"
COINGECKO_DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000")


def quota(response: httpx.Response) -> tuple[str, str, str]:
    """The single ``x-ratelimit-limit`` / ``-remaining`` / ``-reset`` values of an answer."""
    values = []
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        sent = response.headers.get_list(name)
        assert len(sent) == 1, (name, sent)
        values.append(sent[0])
    return values[0], values[1], values[2]


async def test_over_the_hidden_rate_is_a_429_that_is_not_a_violation(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    capacity = {"hidden_rate": 3, "hidden_window_s": 1}
    await emu.set_upstream("coingecko", capacity=capacity, limits={"retry_after": "always"})
    assert [(await client.get(PING)).status_code for _ in range(3)] == [200] * 3
    rejected = await client.get(PING)
    assert rejected.status_code == 429 and rejected.json() == samples.COINGECKO_429
    assert rejected.headers["retry-after"] == "1"  # ceil(time until the oldest start leaves)
    assert rejected.headers["x-ratelimit-limit"] == "3"
    stats = await emu.stats()
    assert stats["hidden_rejected"] == {"coingecko": 1}
    assert stats["responses"]["coingecko"] == {"200": 3, "429": 1}
    assert stats["rate_limited"]["by_upstream"]["coingecko"] == {"hidden": 1}
    assert stats["violations"]["total"] == 0
    await asyncio.sleep(0.1)
    assert (await client.get(PING)).status_code == 429  # inside its Retry-After: early
    rejected_at = time.monotonic()  # ... and it carried a Retry-After: 1 of its own
    stats = await emu.stats()
    assert stats["violations"]["by_kind"] == {"early_retry": 1}
    assert stats["hidden_rejected"] == {"coingecko": 2}
    await asyncio.sleep(max(0.0, rejected_at + 1.03 - time.monotonic()))
    # The window is empty again, and the two rejections were not starts: 3 more pass.
    assert [(await client.get(PING)).status_code for _ in range(3)] == [200] * 3
    stats = await emu.stats()
    assert stats["violations"]["by_kind"] == {"early_retry": 1}
    assert stats["service"]["coingecko"]["served"] == 6


async def test_configured_limits_are_checked_first_and_stay_violations(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream(
        "3xpl",
        limits={"rate": 1, "window_s": 10, "retry_after": "never"},
        capacity={"hidden_rate": 1, "hidden_window_s": 10},
    )
    assert [(await client.get(DASH)).status_code for _ in range(2)] == [200, 429]
    stats = await emu.stats()
    assert stats["rate_limited"]["by_upstream"]["3xpl"] == {"window": 1}
    assert stats["violations"]["by_kind"] == {"window": 1}
    assert stats["hidden_rejected"] == {}
    await emu.set_upstream("3xpl", limits={"rate": 5})
    assert [(await client.get(DASH)).status_code for _ in range(2)] == [429, 429]
    stats = await emu.stats()  # within the configured limits now, but not the hidden one
    assert stats["rate_limited"]["by_upstream"]["3xpl"] == {"window": 1, "hidden": 2}
    assert stats["violations"]["by_kind"] == {"window": 1}


async def test_quota_headers_on_every_answer(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    capacity = {"hidden_rate": 3, "hidden_window_s": 1, "headers": True}
    await emu.set_upstream("3xpl", capacity=capacity)
    answers = [await client.get(DASH) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [quota(a) for a in answers] == [
        ("3", "2", "1"),
        ("3", "1", "1"),
        ("3", "0", "1"),
        ("3", "0", "1"),
    ]
    assert answers[3].headers["retry-after"] == "1"
    assert parse_rate_headers(answers[2].headers) == (3.0, 0.0, 1.0)
    # Without a hidden rate, the configured window; upstreams without `headers` send none.
    await emu.set_upstream("3xpl", capacity={"hidden_rate": None}, limits={"rate": 5})
    assert quota(await client.get(DASH)) == ("5", "1", "60")  # 4 starts in the window
    plain = await client.get("/nearblocks/v1/stats")
    assert not [name for name in plain.headers if name.startswith("x-ratelimit-")]


async def test_coingecko_reset_is_its_date_and_the_collector_reads_it(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    limits = {"rate": 2, "window_s": 60, "retry_after": "always"}
    await emu.set_upstream("coingecko", limits=limits, capacity={"headers": True})
    sent = dt.datetime.now(dt.UTC)
    first = await client.get(PING)
    limit, remaining, reset = quota(first)
    assert (limit, remaining) == ("2", "1") and COINGECKO_DATE.fullmatch(reset)
    wait = parse_retry_after({"x-ratelimit-reset": reset}, now=sent)
    assert wait is not None and 59 < wait <= 60.5
    spent = await client.get(PING)
    assert quota(spent)[:2] == ("2", "0")
    parsed = parse_rate_headers(spent.headers, now=sent)
    assert parsed is not None and parsed[:2] == (2.0, 0.0)
    assert parsed[2] is not None and 59 < parsed[2] <= 60.5
    wait = parse_quota_spent(spent.headers, now=sent)
    assert wait is not None and 59 < wait <= 60.5
    rejected = await client.get(PING)  # the configured window: one set of headers only
    assert rejected.status_code == 429 and quota(rejected)[:2] == ("2", "0")


async def test_a_nanorpcproxy_sends_its_javascript_date(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    capacity = {"hidden_rate": 1, "hidden_window_s": 5, "headers": True}
    await emu.set_upstream("nano", shape={"rate_limit_body": "text"}, capacity=capacity)
    ok = await client.post("/nano", json={"action": "block_count"})
    limited = await client.post("/nano", json={"action": "block_count"})
    assert (ok.status_code, limited.status_code) == (200, 429)
    assert limited.text.startswith("Max allowed requests of 1 reached.")
    for answer in (ok, limited):
        assert quota(answer)[2].endswith("GMT+0000 (Coordinated Universal Time)")
