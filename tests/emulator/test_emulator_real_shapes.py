"""The emulator answers with the shapes of real recorded or documented payloads.

The references are ``tests/fixtures/real/`` (see its README): key sets are compared with
them, field by field, so a parser tested against the emulator meets what the real APIs send
(missing fields, strings for big numbers, zeros for unknowns, non-JSON rate limits).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pydantic
import pytest

from coinharvest.emulator import EmulatorConfig, RunningEmulator, merge_config
from coinharvest.emulator.command import build_config
from coinharvest.emulator.upstreams.nano import proxy_limit_text

from .real import real_payload

CG = "/coingecko/api/v3"
KEY = "?key=any-key"
DEFAULT_IDS = (
    "bitcoin,ethereum,dash,digibyte,monero,ravencoin,chia,ecash,nano,near,internet-computer"
)


def kind(value: Any) -> str:
    """JSON kind of ``value``: numbers are one kind (the examples mix 1 and 1.0)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    kinds: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return kinds[type(value)]


def assert_like(actual: dict[str, Any], example: dict[str, Any], where: str) -> None:
    """Same key set as ``example``, and each value of the same JSON kind (null allowed)."""
    assert set(actual) == set(example), (
        f"{where}: missing {sorted(set(example) - set(actual))}, "
        f"extra {sorted(set(actual) - set(example))}"
    )
    for key, value in example.items():
        if actual[key] is None:
            continue
        assert kind(actual[key]) == kind(value), f"{where}.{key}: {actual[key]!r} vs {value!r}"
        if isinstance(value, dict) and value:
            assert_like(actual[key], value, f"{where}.{key}")


async def chain_stats(client: httpx.AsyncClient, chain: str) -> dict[str, Any]:
    response = await client.get(f"/blockchair/{chain}/stats{KEY}")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()["data"]
    return data


# --- Blockchair -----------------------------------------------------------------------


@pytest.mark.parametrize("chain", ["bitcoin", "ethereum", "monero"])
async def test_blockchair_chain_has_the_documented_key_set(
    client: httpx.AsyncClient, chain: str
) -> None:
    example = real_payload(f"blockchair_{chain}_stats_docs.json")["data"]
    assert_like(await chain_stats(client, chain), example, chain)


@pytest.mark.parametrize("chain", ["dash", "ecash", "synth-00001"])
async def test_other_chains_are_laid_out_like_bitcoin(
    client: httpx.AsyncClient, chain: str
) -> None:
    example = real_payload("blockchair_bitcoin_stats_docs.json")["data"]
    assert_like(await chain_stats(client, chain), example, chain)


async def test_blockchair_ethereum_has_wei_strings_and_no_volume_24h(
    client: httpx.AsyncClient,
) -> None:
    eth = await chain_stats(client, "ethereum")
    assert "volume_24h" not in eth and "circulation" not in eth
    for field in (
        "volume_24h_approximate",
        "circulation_approximate",
        "mempool_total_value_approximate",
        "average_transaction_fee_24h",
        "median_transaction_fee_24h",
        "average_simple_transaction_fee_24h",
        "median_simple_transaction_fee_24h",
        "hashrate_24h",
    ):
        assert isinstance(eth[field], str) and eth[field].isdigit(), (field, eth[field])
    circulating_eth = int(eth["circulation_approximate"]) / 10**18
    assert 100e6 < circulating_eth < 150e6  # wei, not ETH
    assert int(eth["volume_24h_approximate"]) > 10**18
    assert isinstance(eth["inflation_24h"], float)  # in ETH, a number
    erc_20 = real_payload("blockchair_ethereum_stats_docs.json")["data"]["layer_2"]["erc_20"]
    assert set(eth["layer_2"]["erc_20"]) == set(erc_20)


async def test_blockchair_monero_has_no_24h_activity(client: httpx.AsyncClient) -> None:
    xmr = await chain_stats(client, "monero")
    for absent in ("transactions_24h", "volume_24h", "blocks_24h", "outputs"):
        assert absent not in xmr
    assert isinstance(xmr["hashrate_24h"], int)  # a number here, a string on bitcoin
    assert xmr["circulation"] > 2**63  # piconero: beyond 64-bit signed, as recorded


async def test_blockchair_all_stats_entries_have_the_chain_shapes(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get(f"/blockchair/stats{KEY}")).json()
    data = body["data"]
    for chain in ("bitcoin", "ethereum", "monero"):
        example = real_payload(f"blockchair_{chain}_stats_docs.json")["data"]
        assert_like(data[chain]["data"], example, f"/stats.{chain}")
    documented = real_payload("blockchair_stats_all_docs_v2.0.95.json")["data"]
    assert set(data["cross-chain"]) == set(documented["cross-chain"])  # not a chain
    assert "data" not in data["cross-chain"]
    assert body["context"]["code"] == 200


async def test_blockchair_context_has_the_recorded_layout(client: httpx.AsyncClient) -> None:
    recorded = real_payload("blockchair_bitcoin-testnet_stats_2023-04-13_crosschain.json")
    context = (await client.get(f"/blockchair/bitcoin/stats{KEY}")).json()["context"]
    assert set(context) == set(recorded["context"])
    assert context["api"]["version"] == recorded["context"]["api"]["version"]


# --- CoinGecko ------------------------------------------------------------------------


async def test_markets_have_every_field_of_the_openapi_example(client: httpx.AsyncClient) -> None:
    example = real_payload("coingecko_markets_oas_demo_example.json")[0]
    windows = "1h,24h,7d,14d,30d,200d,1y"
    url = f"{CG}/coins/markets?vs_currency=usd&ids={DEFAULT_IDS}&sparkline=true"
    items = (await client.get(f"{url}&price_change_percentage={windows}")).json()
    assert len(items) == 11
    for item in items:
        assert set(item) == set(example), item["id"]
    plain = (await client.get(f"{CG}/coins/markets?vs_currency=usd&ids=bitcoin")).json()[0]
    assert "sparkline_in_7d" not in plain  # extras only when asked for
    assert "market_cap_rank_with_rehypothecated" in plain


async def test_markets_zero_for_an_unknown_supply_like_the_recording(
    client: httpx.AsyncClient,
) -> None:
    recorded = next(
        item
        for item in real_payload("coingecko_markets_2021-09-13_callisto.json")
        if item["id"] == "bitcanna"
    )
    url = f"{CG}/coins/markets?vs_currency=usd&ids={DEFAULT_IDS},synth-00011"
    items = {item["id"]: item for item in (await client.get(url)).json()}
    for coin in ("chia", "synth-00011"):
        item = items[coin]
        assert item["current_price"] > 0 and item["total_volume"] > 0  # real price, volume
        assert item["total_supply"] is not None
        for field in (
            "market_cap",
            "market_cap_rank",
            "fully_diluted_valuation",
            "circulating_supply",
            "market_cap_change_24h",
            "market_cap_change_percentage_24h",
        ):
            assert item[field] == recorded[field], (coin, field)
            assert type(item[field]) is type(recorded[field]), (coin, field)
    others = [item for cid, item in items.items() if cid not in ("chia", "synth-00011")]
    assert all(item["market_cap"] > 0 and item["circulating_supply"] > 0 for item in others)
    assert sorted(item["market_cap_rank"] for item in others) == sorted(
        {item["market_cap_rank"] for item in others}
    )
    caps = [item["market_cap"] for item in (await client.get(url)).json()]
    assert caps == sorted(caps, reverse=True)  # the zeros sort last


async def test_unknown_supply_everywhere_on_coingecko(client: httpx.AsyncClient) -> None:
    price = await client.get(
        f"{CG}/simple/price?ids=chia&vs_currencies=usd&include_market_cap=true"
    )
    assert price.json()["chia"]["usd_market_cap"] == 0 and price.json()["chia"]["usd"] > 0
    detail = (await client.get(f"{CG}/coins/chia?tickers=false")).json()
    assert detail["market_cap_rank"] is None
    assert detail["market_data"]["market_cap"]["usd"] == 0
    assert detail["market_data"]["circulating_supply"] == 0
    assert detail["market_data"]["total_volume"]["usd"] > 0


async def test_ranks_skip_unlisted_coins(client: httpx.AsyncClient) -> None:
    items = (await client.get(f"{CG}/coins/markets?vs_currency=usd&per_page=250")).json()
    ranks = [item["market_cap_rank"] for item in items]
    listed = [rank for rank in ranks if rank is not None]
    assert listed == list(range(1, len(listed) + 1))
    assert ranks[len(listed) :] == [None] * (len(ranks) - len(listed))
    assert {i["id"] for i in items if i["market_cap_rank"] is None} == {"chia", "synth-00011"}


# --- 3xpl -----------------------------------------------------------------------------


async def test_threexpl_sparse_and_null_mempool_chains(client: httpx.AsyncClient) -> None:
    body = (await client.get("/3xpl/?from=synth-00003,synth-00007,synth-00013,dash")).json()
    chains = body["data"]["blockchains"]
    best = {"best_block", "best_block_hash", "best_block_time"}
    assert set(chains["synth-00003"]) == best and set(chains["synth-00013"]) == best
    assert chains["synth-00007"]["mempool_events"] == {"synth-00007-main": None}
    assert chains["dash"]["mempool_events"]["dash-dip2"] is None
    assert chains["dash"]["mempool_events"]["dash-main"] is not None
    assert "events_24h" in chains["dash"]


async def test_threexpl_sparse_chains_option(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("3xpl", shape={"sparse_chains": ["ecash"]})
    body = (await client.get("/3xpl/?from=ecash,dash")).json()["data"]["blockchains"]
    assert set(body["ecash"]) == {"best_block", "best_block_hash", "best_block_time"}
    assert "events_24h" in body["dash"]
    await emu.set_upstream("3xpl", shape={"sparse_chains": []})
    body = (await client.get("/3xpl/?from=ecash,dash")).json()["data"]["blockchains"]
    assert "events_24h" in body["ecash"]  # the edge cache follows the shape


def test_a_shape_option_belongs_to_its_upstream() -> None:
    with pytest.raises(pydantic.ValidationError, match="sparse_chains applies to 3xpl only"):
        merge_config(EmulatorConfig(), {"upstreams": {"nano": {"shape": {"sparse_chains": ["x"]}}}})
    with pytest.raises(pydantic.ValidationError, match="unknown NearBlocks stats fields: nope"):
        merge_config(
            EmulatorConfig(), {"upstreams": {"nearblocks": {"shape": {"null_fields": ["nope"]}}}}
        )


# --- NearBlocks -----------------------------------------------------------------------


async def test_nearblocks_null_fields(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    await emu.set_upstream("nearblocks", shape={"null_fields": ["volume", "near_price"]})
    row = (await client.get("/nearblocks/v1/stats")).json()["stats"][0]
    assert row["volume"] is None and row["near_price"] is None
    assert isinstance(row["total_txns"], str) and isinstance(row["market_cap"], str)
    charts = (await client.get("/nearblocks/v1/charts/latest")).json()["charts"]
    assert all(day["near_price"] is None and day["txns"].isdigit() for day in charts)


# --- Nano -----------------------------------------------------------------------------


async def test_nano_block_count_current_and_pre_v19(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    current = (await client.post("/nano", json={"action": "block_count"})).json()
    assert_like(current, real_payload("nano_block_count_docs.json"), "block_count")
    await emu.set_upstream("nano", shape={"pre_v19": True})
    old = (await client.post("/nano", json={"action": "block_count"})).json()
    assert_like(old, real_payload("nano_block_count_docs_pre-cemented_2019-12.json"), "pre-V19")
    assert "cemented" not in old and all(value.isdigit() for value in old.values())
    telemetry = await client.post("/nano", json={"action": "telemetry"})
    assert telemetry.json() == {"error": "Unknown command"}  # telemetry came with V21


async def test_nano_json_429_is_rpc_nano_to(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("nano", limits={"rate": 1, "window_s": 60})
    await client.post("/nano", json={"action": "block_count"})
    rejected = await client.post("/nano", json={"action": "block_count"})
    assert rejected.status_code == 429
    assert rejected.json() == real_payload("nano_429_rpc_nano_to.json")


TEXT_429 = re.compile(r"^Max allowed requests of (\d+) reached\. Time left: (\d+)sec$")


async def test_nano_text_429_is_nanorpcproxy(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream(
        "nano",
        limits={"rate": 2, "window_s": 42, "retry_after": "always"},
        shape={"rate_limit_body": "text"},
    )
    for _ in range(2):
        assert (await client.post("/nano", json={"action": "block_count"})).status_code == 200
    rejected = await client.post("/nano", json={"action": "block_count"})
    assert rejected.status_code == 429
    match = TEXT_429.match(rejected.text)
    assert match is not None, rejected.text
    assert match.group(1) == "2" and 41 <= int(match.group(2)) <= 42  # the limiter's wait
    assert rejected.headers["content-type"].startswith("text/")  # not JSON
    assert rejected.headers["x-ratelimit-limit"] == "2"
    assert rejected.headers["x-ratelimit-remaining"] == "0"
    assert "GMT+0000" in rejected.headers["x-ratelimit-reset"]
    assert "retry-after" not in rejected.headers  # never, whatever limits.retry_after says
    await asyncio.sleep(0.1)
    await client.post("/nano", json={"action": "block_count"})
    by_kind = (await emu.stats())["violations"]["by_kind"]
    assert by_kind == {"window": 2}  # no early_retry: no Retry-After was sent


async def test_nano_text_429_without_a_rate_names_the_proxy_default(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream(
        "nano", limits={"min_interval_ms": 5000}, shape={"rate_limit_body": "text"}
    )
    await client.post("/nano", json={"action": "block_count"})
    rejected = await client.post("/nano", json={"action": "block_count"})
    match = TEXT_429.match(rejected.text)
    assert match is not None and match.group(1) == "5000"
    assert int(match.group(2)) == 5  # Math.round of the ~4.99 s left


# --- command line ---------------------------------------------------------------------


def test_build_config_shape_flags() -> None:
    config = build_config(
        None,
        strict=True,
        latency_ms=None,
        universe=None,
        blockchair_keyless=True,
        nano_pre_v19=True,
        nano_rate_limit_body="text",
    )
    assert config.upstreams["nano"].shape.pre_v19
    assert config.upstreams["nano"].shape.rate_limit_body == "text"
    assert config.upstreams["blockchair"].auth.key_required is False
    assert config.upstreams["nano"].limits.rate == 60  # strict kept
    default = build_config(None, strict=True, latency_ms=None, universe=None)
    assert default.upstreams["blockchair"].auth.key_required is None  # = required (reality)
    assert not default.upstreams["nano"].shape.pre_v19


def test_proxy_time_left_rounds_half_up_like_javascript() -> None:
    assert proxy_limit_text(5000, 2.5).endswith("Time left: 3sec")  # round() would say 2
    assert proxy_limit_text(5000, 0.4) == "Max allowed requests of 5000 reached. Time left: 0sec"
