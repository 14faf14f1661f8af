"""Limit hints that are not a 429's headers: a plain-text body, a spent quota on a 200.

- NanoRPCProxy answers 429 with ``Max allowed requests of 5000 reached. Time left: 123sec``
  and no Retry-After: that is a 123 s wait.
- CoinGecko sends ``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset`` on *successful*
  answers once the budget is spent: the answer is kept, and the source is paused until the
  reset (the engine's next job there starts no earlier).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from enginekit import coin, starts
from multidict import CIMultiDict
from vclock import run_virtual

from coinharvest.engine import Engine
from coinharvest.errors import RateLimited
from coinharvest.models import CoinStatus, RunSummary, SourceLimits
from coinharvest.sources.base import close_sources
from coinharvest.sources.coingecko import CoinGeckoSource
from coinharvest.sources.http import HttpClient, HttpOptions
from coinharvest.sources.retry_after import parse_body_retry_after, parse_quota_spent
from coinharvest.sources.wire import Answer, HandlerTransport, Request

SERVER_NOW = datetime(2025, 7, 25, 14, 53, 19, tzinfo=UTC)  # far from the local clock
DATE = format_datetime(SERVER_NOW, usegmt=True)
NANO_429 = "Max allowed requests of 5000 reached. Time left: 123sec"


# ----------------------------------------------------------------- body hint


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (NANO_429, 123.0),
        ("Max allowed requests of 5000 reached. Time left: 123 sec", 123.0),
        ("Time left: 45 seconds", 45.0),
        ("time left: 1 second", 1.0),
        ("Time left:7secs", 7.0),
        ("Time left: 2.5s", 2.5),
        ("Too many requests. Time left: 0sec", 1.0),  # rounded: at least 1 s
    ],
)
def test_body_hint_reads_time_left(text: str, seconds: float) -> None:
    assert parse_body_retry_after(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Too many requests. Please Wait.",
        "Time left: soon",
        "Time left: 12 minutes",  # not a unit we know: no guess
        "Time left: 12secondsish",
        '{"error": 429, "message": "Too many requests. Please Wait."}',
    ],
)
def test_body_without_a_hint_gives_none(text: str) -> None:
    assert parse_body_retry_after(text) is None


def _client(handler: Callable[[Request], Answer]) -> HttpClient:
    return HttpClient("nano", "https://nano.test/proxy", transport=HandlerTransport(handler))


@pytest.mark.parametrize("content_type", ["text/plain", "text/html; charset=utf-8"])
async def test_nano_proxy_plain_text_429_becomes_retry_after(content_type: str) -> None:
    """NanoRPCProxy sends it with Express's ``res.send``: ``text/html``, but no page."""
    answer = Answer.of(429, NANO_429.encode(), {"content-type": content_type})
    client = _client(lambda request: answer)
    try:
        with pytest.raises(RateLimited) as info:
            await client.post_json("", {"action": "block_count"})
    finally:
        await client.aclose()
    assert info.value.retry_after == 123
    assert "Time left: 123sec" in str(info.value)


async def test_a_header_hint_wins_over_the_body() -> None:
    answer = Answer.of(429, NANO_429.encode(), {"Retry-After": "5"})
    client = _client(lambda request: answer)
    try:
        with pytest.raises(RateLimited) as info:
            await client.post_json("", {"action": "block_count"})
    finally:
        await client.aclose()
    assert info.value.retry_after == 5


# ----------------------------------------------------------------- spent quota


def _reset_in(seconds: int) -> str:
    return (SERVER_NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S +0000")


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        # CoinGecko's date string, measured against the answer's Date (not the local clock).
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": _reset_in(41), "date": DATE}, 41),
        # Epoch seconds, against Date.
        (
            {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(int(SERVER_NOW.timestamp()) + 30),
                "date": DATE,
            },
            30,
        ),
        # Plain seconds.
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "12"}, 12),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "12.5"}, 12.5),
    ],
)
def test_spent_quota_gives_seconds_until_reset(headers: dict[str, str], seconds: float) -> None:
    assert parse_quota_spent(CIMultiDict(headers)) == seconds


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-remaining": "1", "x-ratelimit-reset": _reset_in(41), "date": DATE},
        {"x-ratelimit-remaining": "0"},  # NanoRPCProxy: no reset, nothing to wait for
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "soon"},
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": _reset_in(-5), "date": DATE},
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"},
        {"x-ratelimit-remaining": "nan", "x-ratelimit-reset": "12"},
        {"x-ratelimit-reset": "12"},
        {},
    ],
)
def test_quota_not_spent_or_no_usable_reset_gives_none(headers: dict[str, str]) -> None:
    assert parse_quota_spent(CIMultiDict(headers)) is None


def _json(status: int, payload: object, headers: dict[str, str]) -> Answer:
    return Answer.of(status, json.dumps(payload).encode(), headers)


def _market(coin_id: str) -> dict[str, object]:
    return {
        "id": coin_id,
        "current_price": 100.0,
        "market_cap": 1e9,
        "total_volume": 1e8,
        "price_change_percentage_24h": 1.5,
        "circulating_supply": 1e7,
    }


def _two_coingecko_jobs(handler: Callable[[Request], Answer]) -> RunSummary:
    """BTC then ETH, one job each, 0.1 s apart at most, on the virtual clock."""
    source = CoinGeckoSource(
        HttpOptions(base_url="https://cg.test/api/v3", transport=HandlerTransport(handler))
    )
    engine = Engine(
        {"coingecko": source},
        limits={"coingecko": SourceLimits(3, 0.1, None)},
        batch_sizes={"coingecko": 1},
    )
    coins = [coin("BTC", "coingecko"), coin("ETH", "coingecko", priority=6)]

    async def go() -> RunSummary:
        try:
            return await engine.run(coins)
        finally:
            await close_sources(engine.sources.values())

    return run_virtual(go())


def test_spent_quota_on_a_200_pauses_the_source_until_the_reset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first answer is good but spends the quota (reset in 41 s): its coin is kept,
    nothing is rate limited, and the next job at CoinGecko starts 41 s later, not 0.1 s."""
    calls: list[str] = []

    def handler(request: Request) -> Answer:
        ids = request.params["ids"].split(",")
        calls.extend(ids)
        spent = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": _reset_in(41)}
        headers = {"date": DATE, "x-ratelimit-limit": "30", **(spent if len(calls) == 1 else {})}
        return _json(200, [_market(i) for i in ids], headers)

    caplog.set_level(logging.WARNING)
    summary = _two_coingecko_jobs(handler)
    assert calls == ["btc", "eth"]
    assert [r.status for r in summary.results] == [CoinStatus.OK, CoinStatus.OK]
    assert summary.rate_limited == 0 and summary.retries == 0
    first, second = starts(summary, "coingecko")
    assert second - first >= 41.0
    assert second - first == pytest.approx(41.0)
    assert (
        "⏳ coingecko quota spent (x-ratelimit-remaining: 0); pausing it for 41.0s" in caplog.text
    )


def test_an_answer_with_quota_left_does_not_pause() -> None:
    def handler(request: Request) -> Answer:
        ids = request.params["ids"].split(",")
        headers = {"date": DATE, "x-ratelimit-remaining": "7", "x-ratelimit-reset": _reset_in(41)}
        return _json(200, [_market(i) for i in ids], headers)

    summary = _two_coingecko_jobs(handler)
    first, second = starts(summary, "coingecko")
    assert second - first == pytest.approx(0.1)
