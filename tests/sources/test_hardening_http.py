"""Hardening of the shared HTTP layer (issue 12, items 2–6), over real loopback HTTP.

- a key echoed in a *data* field leaves a source only through `Source.redact`;
- an upstream message is redacted *before* it is cut to 200 characters;
- `coinharvest sources` shows base URLs without ``token=…`` values or ``user:password@``;
- answers are streamed and stop at ``MAX_RESPONSE_BYTES`` of decompressed body: a 50 MB body
  and a gzip bomb fail the job with one clear error and cost a few MB, not hundreds;
- JSON nested too deeply is a `BadResponse`, not a `RecursionError`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from coinharvest.errors import BadResponse, ClientError, RateLimited, SourceError
from coinharvest.models import CoinAnswer
from coinharvest.sources.base import FetchResult, Source
from coinharvest.sources.fields import JsonReader
from coinharvest.sources.http import HttpClient
from coinharvest.sources.reading import Reading

from .loopback import Answer, Loopback
from .sourcekit import coins_for, make_source

SHORT_KEY = "CG-k3yThatMustNotLeak42"  # quoted whole in a 40-character quote
LONG_KEY = "k3y" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[:61]
MIB = 1 << 20
TOO_LARGE = "coingecko: GET /coins/markets: answer larger than {} (limit MAX_RESPONSE_BYTES)"


def leaks(secret: str, text: str, window: int = 6) -> bool:
    """Whether any `window` consecutive characters of `secret` appear in `text`."""
    return any(secret[i : i + window] in text for i in range(len(secret) - window + 1))


async def fetch(
    canned: Loopback, env: dict[str, str] | None = None, name: str = "coingecko"
) -> tuple[Source, FetchResult]:
    """`name`'s fetch against `canned`; the (closed) source is returned for its `redact`."""
    source = make_source(name, canned.url, env)
    try:
        return source, await source.fetch(coins_for(name))
    finally:
        await source.aclose()


async def fetch_error(
    canned: Loopback, env: dict[str, str] | None = None
) -> tuple[Source, SourceError]:
    """The error a CoinGecko fetch against `canned` raises (and the source)."""
    source = make_source("coingecko", canned.url, env)
    try:
        with pytest.raises(SourceError) as info:
            await source.fetch(coins_for("coingecko"))
    finally:
        await source.aclose()
    return source, info.value


# --- 2. a key in a data field leaves a source only through its redaction point ----------


@pytest.mark.parametrize("key", [SHORT_KEY, LONG_KEY], ids=["whole", "cut-at-40"])
async def test_a_key_in_a_data_field_is_redacted_from_the_notes(key: str, canned: Loopback) -> None:
    canned.answer(Answer.json(200, [{"id": "bitcoin", "current_price": key, "total_volume": 5.0}]))
    source, result = await fetch(canned, {"COINGECKO_API_KEY": key})
    answer = result["BTC"]
    assert isinstance(answer, CoinAnswer)
    notes = "\n".join(answer.notes)
    assert key[:30] in notes  # the reading quotes what the upstream sent (at most 40 chars)
    cleaned = source.redact(notes)
    assert "price_usd: current_price is not a finite number: '***" in cleaned
    assert not leaks(key, cleaned), cleaned


@pytest.mark.parametrize("key", [SHORT_KEY, LONG_KEY], ids=["whole", "cut-at-40"])
async def test_a_key_in_the_answer_is_redacted_from_a_bad_response(
    key: str, canned: Loopback
) -> None:
    canned.answer(Answer.json(200, {"status": key}))  # an object where an array belongs
    source, error = await fetch_error(canned, {"COINGECKO_API_KEY": key})
    assert isinstance(error, BadResponse)
    message = str(error)
    assert message.startswith("coingecko: /coins/markets: expected an array, got {'status': '")
    assert key[:20] in message  # JsonReader quotes at most 40 characters of the value
    cleaned = source.redact(message)
    assert not leaks(key, cleaned), cleaned
    assert "'status': '***" in cleaned


def test_the_default_redaction_point_removes_query_secrets_and_credentials() -> None:
    class Plain(Source):
        name = "plain"

        async def fetch(self, coins: Any) -> FetchResult:
            return {}

    text = "see https://ann:pa55@host.test/v1?token=t0k&x=1 and key=abc"
    assert Plain().redact(text) == "see https://***@host.test/v1?token=***&x=1 and key=***"


# --- 3. redact first, then cut ------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 429, 500])
@pytest.mark.parametrize(
    ("lead", "secret", "env"),
    [
        (
            190,
            "k3yStraddlingTheCut0123456789",
            {"COINGECKO_API_KEY": "k3yStraddlingTheCut0123456789"},
        ),
        (182, "https://ann:s3cretpassw0rd@upstream.test", {}),  # credentials no setting names
    ],
    ids=["api-key", "url-credentials"],
)
async def test_a_secret_straddling_the_200_character_cut_is_redacted_first(
    status: int, lead: int, secret: str, env: dict[str, str], canned: Loopback
) -> None:
    private = secret.split("//")[-1].split("@")[0]  # the key, or the URL's credentials
    assert lead + secret.index(private) < 197 < lead + len(secret)  # the cut falls inside it
    canned.answer(Answer.json(status, {"error": "x" * lead + secret + " and words after it"}))
    _, error = await fetch_error(canned, env)
    text = str(error)
    assert "xxxxxxxx" in text and len(text) < 260  # the message was cut...
    assert not leaks(private, text, window=4), text  # ...after the redaction


async def test_a_secret_in_an_html_title_is_redacted_before_the_cut(canned: Loopback) -> None:
    key = "k3yInTheTitle0123456789"
    title = "y" * 180 + key + " z" * 50
    canned.answer(Answer.html(200, f"<html><title>{title}</title></html>"))
    _, error = await fetch_error(canned, {"COINGECKO_API_KEY": key})
    text = str(error)
    assert text.startswith('coingecko: GET /coins/markets: HTML page "yyyy')
    assert not leaks(key, text, window=4), text


# --- 4. `coinharvest sources` --------------------------------------------------------------


def test_sources_command_redacts_base_url_credentials_and_tokens(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "COINS_FILE"}}
    env |= {
        "COLUMNS": "200",
        "COINGECKO_BASE_URL": "https://alice:hunter2pw@cg.example/api/v3?token=s3cr3tvalue",
        "THREEXPL_BASE_URL": "https://x.example/?key=abc123def",
    }
    result = subprocess.run(
        [sys.executable, "-m", "coinharvest", "sources"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for secret in ("alice", "hunter2pw", "s3cr3tvalue", "abc123def"):
        assert secret not in out, out
    assert "https://***@cg.example/api/v3?token=***" in result.stdout
    assert "https://x.example/?key=***" in result.stdout


async def test_the_client_base_url_hides_credentials() -> None:
    client = HttpClient("x", "https://ann:pw@h.test/api/?token=t0k")
    try:
        assert client.base_url == "https://***@h.test/api/?token=***"
        assert "pw" not in repr(client)
    finally:
        await client.aclose()


# --- 5. bounded bodies ---------------------------------------------------------------------


def markets(n: int = 1) -> bytes:
    item = {"id": "bitcoin", "current_price": 91234.5, "total_volume": 5.0}
    return json.dumps([item] * n).encode()


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
async def test_a_compressed_answer_within_the_limit_is_read(
    encoding: str, compress: Any, canned: Loopback
) -> None:
    canned.answer(Answer(body=compress(markets()), headers={"Content-Encoding": encoding}))
    _, result = await fetch(canned)
    answer = result["BTC"]
    assert isinstance(answer, CoinAnswer)
    assert {o.metric: o.value for o in answer.observations}["price_usd"] == 91234.5


async def test_an_answer_just_within_the_limit_is_read(canned: Loopback) -> None:
    body = markets()
    padded = body[:-1] + b" " * (2 * MIB - len(body)) + b"]"
    assert len(padded) == 2 * MIB
    canned.answer(Answer(body=padded))
    _, result = await fetch(canned, {"MAX_RESPONSE_BYTES": str(2 * MIB)})
    assert isinstance(result["BTC"], CoinAnswer)


@pytest.mark.parametrize(
    ("env", "size", "limit"),
    [({}, 9 * MIB, "8 MiB"), ({"MAX_RESPONSE_BYTES": str(MIB)}, MIB + 1, "1 MiB")],
    ids=["default", "configured"],
)
async def test_an_answer_over_the_limit_fails_the_job(
    env: dict[str, str], size: int, limit: str, canned: Loopback
) -> None:
    canned.answer(Answer(body=b"[" + b" " * (size - 2) + b"]"))
    with pytest.raises(BadResponse) as info:
        await fetch(canned, env)
    assert str(info.value) == TOO_LARGE.format(limit)


async def test_a_gzip_bomb_is_stopped_at_the_limit(canned: Loopback) -> None:
    bomb = gzip.compress(b"[" + b" " * (100 * MIB) + b"]")
    assert len(bomb) < 200_000
    canned.answer(Answer(body=bomb, headers={"Content-Encoding": "gzip"}))
    with pytest.raises(BadResponse) as info:
        await fetch(canned)
    assert str(info.value) == TOO_LARGE.format("8 MiB")


async def test_an_error_answer_with_a_huge_body_keeps_its_meaning(canned: Loopback) -> None:
    body = b"Too many requests. " + b"x" * (20 * MIB)
    canned.answer(Answer(429, body, {"Retry-After": "7"}, "text/plain"))
    with pytest.raises(RateLimited) as info:
        await fetch(canned)
    assert info.value.retry_after == 7
    assert "HTTP 429: Too many requests. xxx" in str(info.value)


async def test_an_unsupported_content_encoding_is_a_bad_response(canned: Loopback) -> None:
    canned.answer(Answer(body=b"\x1b\x00garbage", headers={"Content-Encoding": "br"}))
    with pytest.raises(BadResponse, match="undecodable answer to GET /coins/markets: unsupported"):
        await fetch(canned)


async def test_a_corrupt_gzip_body_is_a_bad_response(canned: Loopback) -> None:
    canned.answer(Answer(body=b"not gzip at all", headers={"Content-Encoding": "gzip"}))
    with pytest.raises(BadResponse, match="undecodable answer to GET /coins/markets"):
        await fetch(canned)


#: Runs in a fresh interpreter, so its peak RSS is its own: fetches from argv[1] and prints
#: the error, the growth of the peak RSS (VmHWM, Linux) and tracemalloc's peak, in MiB.
MEASURE = """
import asyncio, json, sys, tracemalloc
from coinharvest.config import load_settings
from coinharvest.models import Coin
from coinharvest.sources.registry import build_sources

def peak_rss():
    try:
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) / 1024 for l in status if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None

async def main(url):
    settings = load_settings({}, None)
    source = build_sources(settings, names=["coingecko"], base_urls={"coingecko": url})
    source = source["coingecko"]
    coin = Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"}, (("coingecko",),))
    before = peak_rss()
    tracemalloc.start()
    try:
        await source.fetch([coin])
        error = None
    except Exception as exc:
        error = str(exc)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    after = peak_rss()
    await source.aclose()
    growth = None if before is None or after is None else after - before
    print(json.dumps({"error": error, "rss_growth_mib": growth, "traced_peak_mib": traced}))

asyncio.run(main(sys.argv[1]))
"""


def _bomb() -> Answer:
    bomb = gzip.compress(b'{"pad": "' + b"0" * (100 * MIB) + b'"}', 9)
    return Answer(body=bomb, headers={"Content-Encoding": "gzip"})


@pytest.mark.parametrize(
    "make",
    [lambda: Answer(body=b'{"pad": "' + b"0" * (50 * MIB) + b'"}'), _bomb],
    ids=["50MB-body", "100MB-gzip-bomb"],
)
async def test_memory_stays_bounded_whatever_the_answer_size(make: Any, canned: Loopback) -> None:
    canned.answer(make())
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        MEASURE,
        canned.url,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    measured = json.loads(out)
    print(f"memory: {measured}")  # shown with -s; figures for docs/RELIABILITY.md
    assert measured["error"] == TOO_LARGE.format("8 MiB")
    assert measured["traced_peak_mib"] < 40  # was ~214 MiB (50 MB) and ~426 MiB (bomb)
    if measured["rss_growth_mib"] is not None:
        assert measured["rss_growth_mib"] < 40  # was ~205 MiB and ~415 MiB


# --- 6. nesting ----------------------------------------------------------------------------


async def test_json_nested_too_deeply_is_a_bad_response(canned: Loopback) -> None:
    canned.answer(Answer(body=b"[" * 100_000))
    with pytest.raises(BadResponse) as info:
        await fetch(canned)
    assert str(info.value) == "coingecko: GET /coins/markets: JSON nested too deeply"


def test_a_deeply_nested_value_is_quoted_briefly() -> None:
    deep: list[Any] = []
    for _ in range(5000):  # deeper than repr() can go
        deep = [deep]
    with pytest.raises(
        BadResponse, match=r"^s: /x: expected an object, got \[\[\[\[\.\.\.\]\]\]\]$"
    ):
        JsonReader("s").object(deep, "/x")
    reading = Reading("s", "/x")
    reading.number({"v": deep}, "v", "m")
    assert reading.notes == ["s: m: v is not a finite number: [[[[...]]]]"]


async def test_a_client_error_still_names_the_upstream_message(canned: Loopback) -> None:
    canned.answer(Answer.json(401, {"error": "Invalid API key " + SHORT_KEY}))
    _, error = await fetch_error(canned, {"COINGECKO_API_KEY": SHORT_KEY})
    assert isinstance(error, ClientError)
    assert str(error) == "coingecko: HTTP 401: Invalid API key ***"
