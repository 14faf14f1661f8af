"""Every source's parser against answers nobody here wrote, through its real HTTP layer.

The bodies are in tests/fixtures/real/ (recorded or published by the upstreams or third
parties; its README says where each comes from) and, where no recording exists,
tests/fixtures/documented/ (the shape the upstream's own code or docs give). A loopback
server sends them over real HTTP to a source built through the registry, exactly as in a
run. Rules under test (DESIGN §11): a missing, null or unusable field drops that metric with
a note, never the coin or the batch; "unknown" values store nothing; numbers sent as strings
and base units are parsed; approximate values are stored as estimated, with low confidence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coinharvest.config import load_settings
from coinharvest.emulator import EmulatorConfig, run_emulator
from coinharvest.errors import BadResponse, RateLimited
from coinharvest.models import Coin, CoinAnswer, Confidence, Observation
from coinharvest.sources.base import FetchResult, Source
from coinharvest.sources.http import HttpClient, HttpSource
from coinharvest.sources.registry import build_sources

from .loopback import Answer, Loopback
from .sourcekit import make_source

FIXTURES = Path(__file__).parent.parent / "fixtures"
KEYS = {"blockchair": {"BLOCKCHAIR_API_KEY": "test-key"}}


def fixture(name: str) -> Any:
    folder = "documented" if name.startswith(("threexpl_", "nearblocks_stats")) else "real"
    return json.loads((FIXTURES / folder / name).read_text())


async def fetch(canned: Loopback, source: str, ids: dict[str, str], body: Any) -> FetchResult:
    canned.answer(Answer.json(200, body))
    built = make_source(source, canned.url, KEYS.get(source))
    coins = [Coin(sym, sym.title(), {source: cid}, ((source,),)) for sym, cid in ids.items()]
    try:
        return await built.fetch(coins)
    finally:
        await built.aclose()


def answer_of(result: FetchResult, symbol: str) -> CoinAnswer:
    got = result[symbol]
    assert isinstance(got, CoinAnswer), got
    return got


def http_of(source: Source) -> HttpClient:
    """The HTTP client of `source`, a built-in (HTTP) source."""
    assert isinstance(source, HttpSource), source
    return source.http


def values(answer: CoinAnswer) -> dict[str, float | None]:
    return {o.metric: o.value for o in answer.observations}


def by_metric(answer: CoinAnswer) -> dict[str, Observation]:
    return {o.metric: o for o in answer.observations}


# --------------------------------------------------------------------------- CoinGecko


async def test_coingecko_openapi_example(canned: Loopback) -> None:
    result = await fetch(
        canned, "coingecko", {"BTC": "bitcoin"}, fixture("coingecko_markets_oas_demo_example.json")
    )
    btc = answer_of(result, "BTC")
    assert values(btc) == {
        "price_usd": 77671.0,
        "market_cap_usd": 1555886872303.0,
        "volume_24h_usd": 33235034316.0,
        "price_change_24h_pct": -0.95302,
        "circulating_supply": 20030493.0,
    }
    assert btc.notes == []
    path = canned.requests[0].path
    assert path.startswith("/coins/markets?") and "ids=bitcoin" in path


async def test_coingecko_zero_market_cap_and_supply_mean_unknown(canned: Loopback) -> None:
    """A 2021 recording: bitcanna has a price and a volume, but market_cap 0 and supply 0."""
    ids = {"ATOM": "cosmos", "BCNA": "bitcanna", "BTC": "bitcoin"}
    result = await fetch(
        canned, "coingecko", ids, fixture("coingecko_markets_2021-09-13_callisto.json")
    )
    bcna = answer_of(result, "BCNA")
    assert values(bcna) == {
        "price_usd": 0.03998645,
        "volume_24h_usd": 186.04,
        "price_change_24h_pct": -51.25806,
    }
    assert sorted(bcna.notes) == [
        "coingecko: circulating_supply: circulating_supply = 0.0 means unknown at coingecko",
        "coingecko: market_cap_usd: market_cap = 0.0 means unknown at coingecko",
    ]
    assert values(answer_of(result, "BTC"))["market_cap_usd"] == 836648999243.0
    assert len(values(answer_of(result, "ATOM"))) == 5


async def test_coingecko_numbers_sent_as_strings(canned: Loopback) -> None:
    """pycoingecko's 2018 recording sends the supply and the 24 h change as strings."""
    result = await fetch(
        canned,
        "coingecko",
        {"BTC": "bitcoin"},
        fixture("coingecko_markets_2018-08-28_pycoingecko.json"),
    )
    btc = values(answer_of(result, "BTC"))
    assert btc["circulating_supply"] == 17236100.0
    assert btc["price_change_24h_pct"] == pytest.approx(4.46323343521924)
    assert btc["price_usd"] == pytest.approx(7015.11823787848)


async def test_coingecko_429_recorded_body_and_headers(canned: Loopback) -> None:
    headers = {
        k: v
        for k, v in fixture("coingecko_429_headers_2022_public.json").items()
        if not k.startswith("_") and k not in {"date", "content-type"}
    }
    canned.answer(Answer(429, json.dumps(fixture("coingecko_429_body.json")).encode(), headers))
    source = make_source("coingecko", canned.url)
    coin = Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"}, (("coingecko",),))
    try:
        with pytest.raises(RateLimited) as info:
            await source.fetch([coin])
    finally:
        await source.aclose()
    assert info.value.retry_after == 119
    assert "You've exceeded the Rate Limit" in str(info.value)


# --------------------------------------------------------------------------- Blockchair


async def test_blockchair_bitcoin_docs_example(canned: Loopback) -> None:
    result = await fetch(
        canned, "blockchair", {"BTC": "bitcoin"}, fixture("blockchair_bitcoin_stats_docs.json")
    )
    btc = answer_of(result, "BTC")
    assert values(btc) == {
        "tx_count_24h": 229726.0,
        "block_height": 690164.0,
        "mempool_tx": 6591.0,
        "onchain_volume_24h": pytest.approx(1877132.67560047),
        "onchain_volume_24h_usd": pytest.approx(1877132.67560047 * 32723),
    }
    assert all(not o.estimated for o in btc.observations) and btc.notes == []
    assert canned.requests[0].path.startswith("/bitcoin/stats?key=")


async def test_blockchair_ethereum_volume_is_an_approximate_string_in_wei(
    canned: Loopback,
) -> None:
    result = await fetch(
        canned, "blockchair", {"ETH": "ethereum"}, fixture("blockchair_ethereum_stats_docs.json")
    )
    eth = by_metric(answer_of(result, "ETH"))
    assert eth["tx_count_24h"].value == 1302619.0 and not eth["tx_count_24h"].estimated
    volume = eth["onchain_volume_24h"]
    assert volume.value == pytest.approx(6300512.633065118)
    assert volume.estimated and volume.confidence is Confidence.LOW
    usd = eth["onchain_volume_24h_usd"]
    assert usd.value == pytest.approx(6300512.633065118 * 1774.01)
    assert usd.estimated and usd.confidence is Confidence.LOW


async def test_blockchair_monero_lacks_counts_and_volume(canned: Loopback) -> None:
    result = await fetch(
        canned, "blockchair", {"XMR": "monero"}, fixture("blockchair_monero_stats_docs.json")
    )
    xmr = answer_of(result, "XMR")
    assert values(xmr) == {"block_height": 2012710.0, "mempool_tx": 140.0}
    assert sorted(xmr.notes) == [
        "blockchair: onchain_volume_24h: not in the answer (volume_24h)",
        "blockchair: tx_count_24h: not in the answer (transactions_24h)",
    ]


async def test_blockchair_zero_market_price_prices_nothing(canned: Loopback) -> None:
    """A 2023 testnet recording: every USD field is 0 (unknown)."""
    body = fixture("blockchair_bitcoin-testnet_stats_2023-04-13_crosschain.json")
    result = await fetch(canned, "blockchair", {"TBTC": "bitcoin"}, body)  # same fields
    tbtc = answer_of(result, "TBTC")
    assert "onchain_volume_24h_usd" not in values(tbtc)
    assert {"tx_count_24h", "block_height", "mempool_tx"} <= set(values(tbtc))
    assert any("onchain_volume_24h_usd" in note for note in tbtc.notes)


async def test_blockchair_all_chains_in_one_answer_each_parsed_alone(canned: Loopback) -> None:
    """`/stats`: one request; ETH's and XMR's missing fields cost BTC and DASH nothing."""
    document = fixture("blockchair_stats_all_docs_v2.0.95.json")
    for chain in ("bitcoin", "ethereum", "monero"):
        document["data"][chain] = {"data": fixture(f"blockchair_{chain}_stats_docs.json")["data"]}
    ids = {"BTC": "bitcoin", "ETH": "ethereum", "XMR": "monero", "DASH": "dash", "XEC": "ecash"}
    result = await fetch(canned, "blockchair", ids, document)
    assert len(canned.requests) == 1 and canned.requests[0].path.startswith("/stats?")
    assert values(answer_of(result, "BTC"))["tx_count_24h"] == 229726.0
    assert by_metric(answer_of(result, "ETH"))["onchain_volume_24h"].estimated
    assert "tx_count_24h" not in values(answer_of(result, "XMR"))
    # The documented example abridges dash to its first field ("blocks"): nothing usable,
    # but an answer, not an error; eCash is absent from it: unknown there.
    assert values(answer_of(result, "DASH")) == {}
    assert str(result["XEC"]) == "unknown to blockchair: ecash"


# --------------------------------------------------------------------------- Nano


@pytest.mark.parametrize(
    ("name", "expected", "note"),
    [
        ("nano_block_count_docs.json",
         {"block_count": 1000.0, "unchecked_count": 10.0, "cemented_count": 25.0}, None),
        ("nano_block_count_docs_pre-cemented_2019-12.json",
         {"block_count": 1000.0, "unchecked_count": 10.0},
         "nano: cemented_count: not in the answer (cemented)"),
        ("nano_block_count_mainnet_node-setup_2021-07.json", None, None),
        ("nano_block_count_nanorpcproxy_tokens_readme.json", None, None),
    ],
)  # fmt: skip
async def test_nano_block_count_answers(
    canned: Loopback, name: str, expected: dict[str, float] | None, note: str | None
) -> None:
    body = fixture(name)
    result = await fetch(canned, "nano", {"XNO": "nano"}, body)
    xno = answer_of(result, "XNO")
    got = values(xno)
    if expected is not None:
        assert got == expected
    else:  # every count the body has, as a number, and nothing from the extra keys
        assert got["block_count"] == float(body["count"])
        assert set(got) <= {"block_count", "unchecked_count", "cemented_count"}
    assert xno.notes == ([note] if note else [])
    assert all(isinstance(v, float) for v in got.values())


async def test_nano_node_error_is_a_bad_response(canned: Loopback) -> None:
    with pytest.raises(BadResponse, match="node answered error: Wallet not found"):
        await fetch(
            canned, "nano", {"XNO": "nano"}, fixture("nano_error_wallet_not_found_docs.json")
        )


async def test_nano_rpc_nano_to_429(canned: Loopback) -> None:
    canned.answer(Answer.json(429, fixture("nano_429_rpc_nano_to.json")))
    source = make_source("nano", canned.url)
    try:
        with pytest.raises(RateLimited, match="Too many requests"):
            await source.fetch([Coin("XNO", "Nano", {"nano": "nano"}, (("nano",),))])
    finally:
        await source.aclose()


# --------------------------------------------------------------------------- NearBlocks


async def test_nearblocks_stats_strings(canned: Loopback) -> None:
    result = await fetch(
        canned, "nearblocks", {"NEAR": "near"}, fixture("nearblocks_stats_source_shape.json")
    )
    near = by_metric(answer_of(result, "NEAR"))
    assert near["tx_total"].value == 4234567890.0
    assert near["avg_block_time_s"].value == 1.0912
    assert near["nodes_online"].value == 248.0
    assert near["tx_count_24h"].estimated and near["tx_count_24h"].value == 57 * 86_400


async def test_nearblocks_null_columns_drop_their_metrics(canned: Loopback) -> None:
    result = await fetch(
        canned, "nearblocks", {"NEAR": "near"}, fixture("nearblocks_stats_nulls.json")
    )
    near = answer_of(result, "NEAR")
    assert values(near) == {"tx_total": 4234567890.0}
    assert "nearblocks: tps: null (tps)" in near.notes


async def test_nearblocks_429_has_no_retry_hint(canned: Loopback) -> None:
    canned.answer(Answer.json(429, fixture("nearblocks_429_body.json")))
    source = make_source("nearblocks", canned.url)
    try:
        with pytest.raises(RateLimited, match="exceeded your API request limit") as info:
            await source.fetch([Coin("NEAR", "Near", {"nearblocks": "near"}, (("nearblocks",),))])
    finally:
        await source.aclose()
    assert info.value.retry_after is None


# --------------------------------------------------------------------------- 3xpl


async def test_threexpl_documented_sample(canned: Loopback) -> None:
    result = await fetch(
        canned, "3xpl", {"DASH": "dash"}, fixture("threexpl_dash_research_sample.json")
    )
    dash = values(answer_of(result, "DASH"))
    assert dash["events_24h"] == 58213 + 141
    assert dash["block_height"] == 2379512.0
    assert dash["mempool_events"] == 37.0
    age = dash["block_age_s"]
    assert age is not None and age > 0


async def test_threexpl_every_chain_field_is_optional(canned: Loopback) -> None:
    ids = {"BTC": "bitcoin", "XEC": "ecash", "XMR": "monero"}
    result = await fetch(canned, "3xpl", ids, fixture("threexpl_all_sparse.json"))
    btc = answer_of(result, "BTC")
    assert set(values(btc)) == {"block_height", "block_age_s"}
    assert "3xpl: events_24h: events_24h not in the answer" in btc.notes
    xec = answer_of(result, "XEC")
    assert values(xec)["events_24h"] == 31877.0 and values(xec)["block_height"] == 924511.0
    assert "3xpl: mempool_events: mempool_events: no module has a number" in xec.notes
    xmr = answer_of(result, "XMR")
    assert values(xmr) == {"events_24h": 91234.0}
    assert "3xpl: block_height: null (best_block)" in xmr.notes
    assert any(
        n.startswith("3xpl: block_age_s: best_block_time is not an ISO time") for n in xmr.notes
    )


async def test_nano_proxy_text_429_from_the_emulator_carries_its_wait() -> None:
    """The emulator's NanoRPCProxy answer (as its source sends it: text/html, no page)."""
    config = EmulatorConfig()
    async with run_emulator(config) as emu:
        await emu.set_upstream(
            "nano",
            limits={"min_interval_ms": 30_000, "retry_after": "never"},
            shape={"rate_limit_body": "text"},
        )
        source = make_source("nano", emu.base_urls["nano"])
        coin = Coin("XNO", "Nano", {"nano": "nano"}, (("nano",),))
        try:
            await source.fetch([coin])
            with pytest.raises(RateLimited, match="Time left: ") as info:
                await source.fetch([coin])
        finally:
            await source.aclose()
    assert info.value.retry_after is not None and 28 <= info.value.retry_after <= 30


def test_threexpl_without_a_key_uses_the_keyless_sandbox() -> None:
    assert http_of(make_source("3xpl", "")).base_url == "https://sandbox-api.3xpl.com"
    keyed = load_settings({"THREEXPL_API_KEY": "k"}, None)
    source = build_sources(keyed, names=["3xpl"])["3xpl"]
    assert http_of(source).base_url == "https://api.3xpl.com"


async def test_blockchair_null_exact_volume_falls_back_to_the_approximate_one(
    canned: Loopback,
) -> None:
    eth = fixture("blockchair_ethereum_stats_docs.json")
    eth["data"]["volume_24h"] = None
    eth["data"]["market_price_usd"] = -3  # implausible: nothing is priced with it
    result = await fetch(canned, "blockchair", {"ETH": "ethereum"}, eth)
    answer = answer_of(result, "ETH")
    assert by_metric(answer)["onchain_volume_24h"].estimated
    assert "onchain_volume_24h_usd" not in values(answer)
    assert "blockchair: onchain_volume_24h_usd: no usable market_price_usd (-3)" in answer.notes


def test_rate_headers_are_read_from_recorded_coingecko_answers() -> None:
    """The adaptive rate control's input, from real headers: the 2025 capture's limit,
    remaining and date-string reset (read against the recording's own time); the 2022
    capture has none of them (only Retry-After)."""
    from datetime import UTC, datetime

    from httpx import Headers

    from coinharvest.sources.retry_after import parse_rate_headers

    def recorded(name: str) -> Headers:
        return Headers({k: v for k, v in fixture(name).items() if k != "_source"})

    at_capture = datetime(2025, 7, 25, 14, 53, 19, tzinfo=UTC)  # the reset is 41 s later
    headers = recorded("coingecko_429_headers_2025.json")
    assert parse_rate_headers(headers, at_capture) == (30.0, 0.0, 41.0)
    assert parse_rate_headers(recorded("coingecko_429_headers_2022_public.json")) is None
