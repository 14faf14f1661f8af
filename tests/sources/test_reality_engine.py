"""What real APIs do, through the engine: keyless Blockchair, IP blocks, empty and absurd answers.

Real HTTP on loopback (a canned server answering recorded bodies); nothing inside the
client is mocked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict, Unpack

from coinharvest.engine import Engine
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import (
    Coin,
    CoinResult,
    CoinStatus,
    Observation,
    RunSummary,
    SourceLimits,
)
from coinharvest.sources.base import FetchResult, Source, close_sources

from .loopback import Answer, Loopback, Recorded
from .sourcekit import make_source

REAL = Path(__file__).parent.parent / "fixtures" / "real"


def _real(name: str) -> object:
    return json.loads((REAL / name).read_text())


def _coin(symbol: str, ids: dict[str, str], chain: tuple[str, ...]) -> Coin:
    return Coin(symbol, symbol.title(), ids, (chain,))


class _EngineOptions(TypedDict, total=False):
    """The `Engine` options these tests set."""

    max_concurrency: int
    batch_sizes: Mapping[str, int]
    limits: Mapping[str, SourceLimits]
    retry: RetryPolicy


async def _run(
    sources: dict[str, Source], coins: list[Coin], **engine: Unpack[_EngineOptions]
) -> RunSummary:
    run_engine = Engine(sources, **engine)
    try:
        return await run_engine.run(coins)
    finally:
        await close_sources(sources.values())


def _result(summary: RunSummary, symbol: str) -> CoinResult:
    return next(r for r in summary.results if r.symbol == symbol)


async def test_keyless_blockchair_is_skipped_without_a_request(canned: Loopback) -> None:
    canned.answer(Answer.html(403, "<title>Access denied</title>"))  # 3xpl fails
    sources = {
        "3xpl": make_source("3xpl", canned.url),
        "blockchair": make_source("blockchair", canned.url),  # no BLOCKCHAIR_API_KEY
    }
    dash = _coin("DASH", {"3xpl": "dash", "blockchair": "dash"}, ("3xpl", "blockchair"))
    summary = await _run(sources, [dash])
    assert [r.path.split("?")[0] for r in canned.requests] == ["/"]  # 3xpl only
    result = _result(summary, "DASH")
    assert result.status is CoinStatus.FAILED
    assert result.error is not None
    assert "blockchair skipped: needs an API key" in result.error
    assert "BLOCKCHAIR_API_KEY" in result.error


async def test_ip_blocked_blockchair_is_asked_nothing_more_in_the_run(canned: Loopback) -> None:
    canned.answer(Answer.json(430, _real("blockchair_430_body_2023-04-20.json")))
    source = make_source("blockchair", canned.url, {"BLOCKCHAIR_API_KEY": "k"})
    coins = [
        _coin("BTC", {"blockchair": "bitcoin"}, ("blockchair",)),
        _coin("DASH", {"blockchair": "dash"}, ("blockchair",)),
    ]
    summary = await _run(
        {"blockchair": source}, coins, batch_sizes={"blockchair": 1}, max_concurrency=1
    )
    assert len(canned.requests) == 1  # no retry, and DASH's job was never sent
    assert summary.coins_failed == 2 and summary.retries == 0
    for result in summary.results:
        assert result.error is not None and "BLOCKCHAIR_API_KEY" in result.error
    assert "IP blocked" in (_result(summary, "BTC").error or "")
    assert "blockchair skipped" in (_result(summary, "DASH").error or "")


async def test_one_malformed_chain_of_a_stats_answer_fails_only_its_coins(
    canned: Loopback,
) -> None:
    document = _real("blockchair_stats_all_docs_v2.0.95.json")  # every chain, abridged
    bitcoin = _real("blockchair_bitcoin_stats_docs.json")
    assert isinstance(document, dict) and isinstance(bitcoin, dict)
    document["data"]["bitcoin"] = {"data": bitcoin["data"]}
    document["data"]["ethereum"] = {"data": "garbled"}
    canned.answer(Answer.json(200, document))
    source = make_source("blockchair", canned.url, {"BLOCKCHAIR_API_KEY": "k"})
    coins = [
        _coin("BTC", {"blockchair": "bitcoin"}, ("blockchair",)),
        _coin("ETH", {"blockchair": "ethereum"}, ("blockchair",)),
    ]
    summary = await _run({"blockchair": source}, coins)
    assert len(canned.requests) == 1
    assert _result(summary, "BTC").status is CoinStatus.OK
    eth = _result(summary, "ETH")
    assert eth.status is CoinStatus.FAILED
    assert "/stats.data.ethereum.data: expected an object" in (eth.error or "")


async def test_a_coin_whose_answer_has_no_usable_value_is_not_ok(canned: Loopback) -> None:
    item = {"id": "bitcoin", "current_price": None, "market_cap": 0, "total_volume": None,
            "price_change_percentage_24h": None, "circulating_supply": 0}  # fmt: skip
    canned.answer(Answer.json(200, [item]))
    source = make_source("coingecko", canned.url)
    summary = await _run(
        {"coingecko": source}, [_coin("BTC", {"coingecko": "bitcoin"}, ("coingecko",))]
    )
    (result,) = summary.results
    assert result.status is CoinStatus.FAILED
    assert result.error == "coingecko: the answer had no usable value"
    assert "coingecko: market_cap_usd: market_cap = 0 means unknown at coingecko" in result.notes
    assert "coingecko: price_usd: null (current_price)" in result.notes
    assert result.observations == []


async def test_implausible_values_are_dropped_and_nothing_derived_is_infinite(
    canned: Loopback,
) -> None:
    item = {"id": "bitcoin", "current_price": 1e308, "market_cap": -5, "total_volume": 1e308,
            "price_change_percentage_24h": -1.5, "circulating_supply": 19_000_000}  # fmt: skip

    def answer(request: Recorded) -> Answer:
        return Answer.json(200, [item])

    canned.handler = answer
    source = make_source("coingecko", canned.url)
    summary = await _run(
        {"coingecko": source}, [_coin("BTC", {"coingecko": "bitcoin"}, ("coingecko",))]
    )
    (result,) = summary.results
    assert result.status is CoinStatus.OK
    got = {o.metric: o.value for o in result.observations}
    assert got == {"price_change_24h_pct": -1.5, "circulating_supply": 19_000_000.0}
    assert all(o.value is not None and math.isfinite(o.value) for o in result.observations)
    assert any(n.startswith("coingecko: price_usd: 1e+308 is implausible") for n in result.notes)
    assert any(n.startswith("coingecko: market_cap_usd: -5 is implausible") for n in result.notes)


async def test_a_job_in_flight_when_its_source_is_blocked_is_not_retried(
    canned: Loopback,
) -> None:
    blocked = Answer.json(430, _real("blockchair_430_body_2023-04-20.json"))
    limited = replace(Answer.json(429, {"data": None, "context": {"code": 429}}), delay_s=0.2)
    canned.handler = lambda request: blocked if "bitcoin" in request.path else limited
    source = make_source("blockchair", canned.url, {"BLOCKCHAIR_API_KEY": "k"})
    coins = [
        _coin("BTC", {"blockchair": "bitcoin"}, ("blockchair",)),
        _coin("DASH", {"blockchair": "dash"}, ("blockchair",)),
    ]
    summary = await _run(
        {"blockchair": source},
        coins,
        batch_sizes={"blockchair": 1},
        limits={"blockchair": SourceLimits(2, 0.0, None)},
        retry=RetryPolicy(base_s=0.01, max_attempts=4),
    )
    assert len(canned.requests) == 2  # DASH's 429 came after the block: not sent again
    assert summary.retries == 0 and summary.coins_failed == 2
    assert "blockchair skipped" in (_result(summary, "DASH").error or "")


async def test_a_huge_number_drops_one_metric_not_the_batch(canned: Loopback) -> None:
    bitcoin = _real("blockchair_bitcoin_stats_docs.json")
    assert isinstance(bitcoin, dict)
    stats = {**bitcoin["data"], "volume_24h": "1e1000010", "mempool_transactions": 1e308}
    document = {"data": {"bitcoin": {"data": stats}, "dash": {"data": bitcoin["data"]}}}
    canned.answer(Answer.json(200, document))
    source = make_source("blockchair", canned.url, {"BLOCKCHAIR_API_KEY": "k"})
    coins = [
        _coin("BTC", {"blockchair": "bitcoin"}, ("blockchair",)),
        _coin("DASH", {"blockchair": "dash"}, ("blockchair",)),
    ]
    summary = await _run({"blockchair": source}, coins)
    assert summary.coins_ok == 2
    btc = _result(summary, "BTC")
    assert {o.metric for o in btc.observations if o.source == "blockchair"} == {
        "tx_count_24h",
        "block_height",
    }
    assert any("volume_24h is out of range" in n for n in btc.notes)
    assert any(n.startswith("blockchair: mempool_tx: 1e+308 is implausible") for n in btc.notes)


class _NullSource(Source):
    """A plug-in whose answers carry only nulls."""

    name = "nulls"

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        now = datetime.now(UTC)
        return {c.symbol: [Observation(c.symbol, self.name, "m", None, now)] for c in coins}


async def test_a_plugin_answer_of_nulls_is_not_ok() -> None:
    summary = await _run({"nulls": _NullSource()}, [_coin("X", {"nulls": "x"}, ("nulls",))])
    (result,) = summary.results
    assert result.status is CoinStatus.FAILED and result.observations == []
    assert result.notes == ["nulls: m: null"]
