"""The shared HTTP layer over real loopback HTTP: answers the emulator cannot give.

Retry-After as an HTTP-date, only ``x-ratelimit-reset``, 503 with Retry-After, keys echoed
by an upstream, refused connections, keep-alive reuse, the User-Agent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qsl

import pytest

from coinharvest import __version__
from coinharvest.errors import (
    BadResponse,
    ClientError,
    PermanentError,
    RateLimited,
    TransientError,
)
from coinharvest.models import CoinAnswer
from coinharvest.sources.base import FetchResult
from coinharvest.sources.http import HttpClient, redact

from .loopback import Answer, Loopback
from .sourcekit import SOURCES, coins_for, make_source

#: Each upstream's own 429 body (reference: CoinGecko verbatim, Blockchair/3xpl context
#: envelope, NearBlocks message, Nano proxy error).
LIMIT_BODIES = {
    "coingecko": {
        "status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}
    },
    "3xpl": {"data": None, "context": {"code": 429, "error": "Too many requests"}},
    "blockchair": {"data": None, "context": {"code": 429, "error": "Too many requests."}},
    "nearblocks": {"message": "You have exceeded your API request limit."},
    "nano": {"error": 429, "message": "Too many requests. Please Wait."},
}


async def fetch_from(canned: Loopback, name: str, env: dict[str, str] | None = None) -> FetchResult:
    source = make_source(name, canned.url, env)
    try:
        return await source.fetch(coins_for(name))
    finally:
        await source.aclose()


@pytest.mark.parametrize("name", SOURCES)
async def test_429_retry_after_as_http_date_is_measured_against_date(
    name: str, canned: Loopback
) -> None:
    server_now = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)  # far from the local clock
    headers = {
        "Date": format_datetime(server_now, usegmt=True),
        "Retry-After": format_datetime(server_now + timedelta(seconds=42), usegmt=True),
    }
    canned.answer(Answer.json(429, LIMIT_BODIES[name], **headers))
    with pytest.raises(RateLimited) as info:
        await fetch_from(canned, name)
    assert info.value.retry_after == 42


@pytest.mark.parametrize("name", SOURCES)
async def test_429_with_only_x_ratelimit_reset(name: str, canned: Loopback) -> None:
    server_now = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
    reset = (server_now + timedelta(seconds=17)).strftime("%Y-%m-%d %H:%M:%S +0000")
    headers = {"Date": format_datetime(server_now, usegmt=True), "x_ratelimit_reset": reset}
    canned.answer(Answer.json(429, LIMIT_BODIES[name], **headers))
    with pytest.raises(RateLimited) as info:
        await fetch_from(canned, name)
    assert info.value.retry_after == 17


@pytest.mark.parametrize("name", SOURCES)
async def test_503_with_retry_after_is_rate_limited(name: str, canned: Loopback) -> None:
    canned.answer(Answer.html(503, "<html><title>Maintenance</title></html>"))
    canned.handler = lambda request: Answer(
        503, b"<html><title>Maintenance</title></html>", {"Retry-After": "7"}, "text/html"
    )
    with pytest.raises(RateLimited) as info:
        await fetch_from(canned, name)
    assert info.value.retry_after == 7
    assert 'HTTP 503: HTML page "Maintenance"' in str(info.value)


@pytest.mark.parametrize("name", SOURCES)
async def test_429_with_no_hint(name: str, canned: Loopback) -> None:
    canned.answer(Answer.json(429, LIMIT_BODIES[name]))
    with pytest.raises(RateLimited) as info:
        await fetch_from(canned, name)
    assert info.value.retry_after is None


@pytest.mark.parametrize("name", [n for n in SOURCES if n != "nano"])
async def test_a_key_echoed_by_the_upstream_is_redacted(name: str, canned: Loopback) -> None:
    secret = "k3y-that-must-not-leak"
    prefix = {"3xpl": "THREEXPL"}.get(name, name.upper())
    body = {"error": f"Invalid API key {secret} for /path?token={secret}&x_cg_pro_api_key={secret}"}
    canned.answer(Answer.json(401, body))
    with pytest.raises(ClientError) as info:
        await fetch_from(canned, name, {f"{prefix}_API_KEY": secret})
    assert secret not in str(info.value)
    assert "Invalid API key *** for /path?token=***&x_cg_pro_api_key=***" in str(info.value)
    sent = canned.requests[0]
    assert secret in sent.path or secret in json.dumps(sent.headers)  # it was sent, though


async def test_nano_sends_no_key_and_posts_block_count(canned: Loopback) -> None:
    canned.answer(Answer.json(200, {"count": "10", "unchecked": "1", "cemented": "9"}))
    result = await fetch_from(canned, "nano", {"NANO_API_KEY": "never-sent"})
    request = canned.requests[0]
    assert request.method == "POST"
    assert json.loads(request.body) == {"action": "block_count"}
    assert "never-sent" not in request.path + json.dumps(request.headers)
    answer = result["XNO"]
    assert isinstance(answer, CoinAnswer)
    assert {o.metric: o.value for o in answer.observations} == {
        "block_count": 10.0,
        "unchecked_count": 1.0,
        "cemented_count": 9.0,
    }


async def test_nano_error_answer_with_http_200_is_a_bad_response(canned: Loopback) -> None:
    canned.answer(Answer.json(200, {"error": "Unknown command"}))
    with pytest.raises(
        BadResponse, match=r"^nano: block_count: node answered error: Unknown command"
    ):
        await fetch_from(canned, "nano")


async def test_an_answer_that_is_not_a_list_is_a_bad_response(canned: Loopback) -> None:
    canned.answer(Answer.json(200, {"error": "not a list"}))
    with pytest.raises(BadResponse, match=r"^coingecko: /coins/markets: expected an array"):
        await fetch_from(canned, "coingecko")


@pytest.mark.parametrize(
    ("item", "note"),
    [
        ({"current_price": "abc"}, "price_usd: current_price is not a finite number: 'abc'"),
        ({}, "price_usd: not in the answer (current_price)"),
        ({"current_price": None}, "price_usd: null (current_price)"),
    ],
)
async def test_an_unusable_field_drops_that_metric_with_a_note(
    item: dict[str, object], note: str, canned: Loopback
) -> None:
    canned.answer(Answer.json(200, [{"id": "bitcoin", "total_volume": 5.0, **item}]))
    result = await fetch_from(canned, "coingecko")
    answer = result["BTC"]
    assert isinstance(answer, CoinAnswer)
    assert [o.metric for o in answer.observations] == ["volume_24h_usd"]
    assert f"coingecko: {note}" in answer.notes


async def test_html_page_with_200_is_a_bad_response(canned: Loopback) -> None:
    canned.answer(Answer.html(200, "<html><head><title>Just a moment...</title></head></html>"))
    with pytest.raises(
        BadResponse, match=r'^blockchair: GET /stats: HTML page "Just a moment\.\.\."'
    ):
        await fetch_from(canned, "blockchair")


async def test_error_shapes_give_a_one_line_message(canned: Loopback) -> None:
    body = {
        "timestamp": "2025-09-01T13:07:05.880+00:00",
        "error_code": 10011,
        "status": {"error_message": "If you are using Demo API key, please change your root URL"},
    }
    canned.answer(Answer.json(400, body))
    with pytest.raises(ClientError) as info:
        await fetch_from(canned, "coingecko")
    assert str(info.value) == (
        "coingecko: HTTP 400: If you are using Demo API key, please change your root URL "
        "(error_code 10011)"
    )


async def test_refused_connection_is_transient() -> None:
    source = make_source("coingecko", "http://127.0.0.1:9")  # discard port: nobody listens
    try:
        with pytest.raises(TransientError) as info:
            await source.fetch(coins_for("coingecko"))
        # The address without its query (keys travel there), and why.
        assert str(info.value) == (
            "coingecko: ConnectError: GET http://127.0.0.1:9/coins/markets: connection refused"
        )
    finally:
        await source.aclose()


async def test_an_unreachable_host_is_named_without_the_query_or_its_key() -> None:
    client = HttpClient(
        "x", "http://user:pw@127.0.0.1:9/api/v3", params={"x_cg_pro_api_key": "sekrit"}
    )
    try:
        with pytest.raises(TransientError) as info:
            await client.get_json("/coins/markets", {"ids": "bitcoin"})
    finally:
        await client.aclose()
    where = "GET http://127.0.0.1:9/api/v3/coins/markets"
    assert str(info.value) == f"x: ConnectError: {where}: connection refused"
    assert info.value.unreachable


async def test_unsupported_scheme_is_permanent() -> None:
    client = HttpClient("x", "ftp://example.invalid")
    try:
        with pytest.raises(PermanentError, match="unsupported URL"):
            await client.get_json("/")
    finally:
        await client.aclose()


async def test_one_connection_is_reused_and_the_user_agent_is_sent(canned: Loopback) -> None:
    canned.answer(Answer.json(200, []))
    source = make_source("coingecko", canned.url)
    try:
        for _ in range(3):
            await source.fetch(coins_for("coingecko"))
    finally:
        await source.aclose()
    assert canned.connections == 1
    assert {r.headers["user-agent"] for r in canned.requests} == {f"coinharvest/{__version__}"}


@pytest.mark.parametrize(
    ("plan", "header"), [("demo", "x-cg-demo-api-key"), ("pro", "x-cg-pro-api-key")]
)
async def test_coingecko_plan_picks_the_key_header(
    plan: str, header: str, canned: Loopback
) -> None:
    canned.answer(Answer.json(200, []))
    await fetch_from(canned, "coingecko", {"COINGECKO_PLAN": plan, "COINGECKO_API_KEY": "k"})
    request = canned.requests[0]
    assert request.headers[header] == "k"
    path, _, query = request.path.partition("?")
    assert path == "/coins/markets"
    assert parse_qsl(query)[:3] == [
        ("vs_currency", "usd"),
        ("ids", "bitcoin,dash"),
        ("per_page", "2"),
    ]


def test_redact_covers_secret_query_parameters() -> None:
    text = "GET /?from=all&token=abc&key=def&x_cg_demo_api_key=ghi&api_key=jkl&monkey=ok"
    assert redact(text) == (
        "GET /?from=all&token=***&key=***&x_cg_demo_api_key=***&api_key=***&monkey=ok"
    )
    assert redact("bearer sekrit here", ["sekrit"]) == "bearer *** here"
    others = "/x?access_token=a&password=b&client-secret=c&sig=d&Authorization=e&page=2"
    assert redact(others) == (
        "/x?access_token=***&password=***&client-secret=***&sig=***&Authorization=***&page=2"
    )


def test_client_repr_hides_the_key() -> None:
    client = HttpClient("3xpl", "https://api.3xpl.com/?token=abc", secrets=["abc"])
    assert "abc" not in repr(client) and "***" in client.base_url
