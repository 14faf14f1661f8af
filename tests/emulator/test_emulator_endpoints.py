"""Each endpoint answers with the field names and types of the reference samples."""

from __future__ import annotations

import httpx

from coinharvest.emulator import RunningEmulator

from . import samples
from .samples import assert_shape

CG = "/coingecko/api/v3"
ALL_FLAGS = (
    "include_market_cap=true&include_24hr_vol=true&include_24hr_change=true"
    "&include_last_updated_at=true"
)


async def test_base_urls_cover_every_source(emu: RunningEmulator) -> None:
    assert set(emu.base_urls) == {"coingecko", "3xpl", "blockchair", "nearblocks", "nano"}
    assert emu.base_urls["coingecko"] == f"{emu.base_url}/coingecko/api/v3"
    assert emu.base_url.startswith("http://127.0.0.1:")


async def test_ping(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{CG}/ping")
    assert response.json() == {"gecko_says": "(V3) To the Moon!"}


async def test_simple_price_shape_and_unknown_ids_omitted(client: httpx.AsyncClient) -> None:
    url = f"{CG}/simple/price?ids=dash,digibyte,nope&vs_currencies=usd&{ALL_FLAGS}"
    body = (await client.get(url)).json()
    assert set(body) == {"dash", "digibyte"}
    for entry in body.values():
        assert_shape(entry, samples.SIMPLE_PRICE_ENTRY)
    assert 5 < body["dash"]["usd"] < 100 and body["digibyte"]["usd"] < 0.1


async def test_simple_price_requires_vs_currencies(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{CG}/simple/price?ids=bitcoin")
    assert response.status_code == 400
    assert response.json() == {"error": "Missing parameter vs_currencies"}


async def test_markets_shape_for_all_default_coins(client: httpx.AsyncClient) -> None:
    ids = "bitcoin,ethereum,dash,digibyte,monero,ravencoin,chia,ecash,nano,near,internet-computer"
    response = await client.get(f"{CG}/coins/markets?vs_currency=usd&ids={ids},bitcoinn")
    items = response.json()
    assert sorted(item["id"] for item in items) == sorted(ids.split(","))
    caps = [item["market_cap"] for item in items]
    assert caps == sorted(caps, reverse=True)  # default order: market_cap_desc
    for item in items:
        if item["id"] == "chia":  # supply unknown to CoinGecko: see test_emulator_real_shapes
            continue
        strict = item["id"] in ("dash", "digibyte")  # the sample's own coins: no nulls
        assert_shape(item, samples.MARKET_ITEM, nullable=not strict)
    eth = next(item for item in items if item["id"] == "ethereum")
    assert eth["max_supply"] is None  # a null where the real API gives one


async def test_markets_batch_limits_are_enforced(
    client: httpx.AsyncClient, emu: RunningEmulator
) -> None:
    too_many = ",".join(f"synth-{i:05d}" for i in range(1, 252))
    response = await client.get(f"{CG}/coins/markets?vs_currency=usd&ids={too_many}")
    assert response.status_code == 400 and "error" in response.json()
    response = await client.get(f"{CG}/coins/markets?vs_currency=usd&per_page=251")
    assert response.status_code == 400
    ok = await client.get(f"{CG}/coins/markets?vs_currency=usd&per_page=250")
    assert ok.status_code == 200 and len(ok.json()) == 31  # 11 default + 20 synthetic
    stats = await emu.stats()
    assert stats["violations"]["by_kind"] == {"too_many_ids": 1, "per_page": 1}
    assert stats["ids_per_request"]["coingecko"]["/coins/markets"]["max"] == 251


async def test_markets_pagination(client: httpx.AsyncClient) -> None:
    page1 = (await client.get(f"{CG}/coins/markets?vs_currency=usd&per_page=5&page=1")).json()
    page2 = (await client.get(f"{CG}/coins/markets?vs_currency=usd&per_page=5&page=2")).json()
    assert [item["market_cap_rank"] for item in page1 + page2] == list(range(1, 11))


async def test_coin_detail_shape_and_404(client: httpx.AsyncClient) -> None:
    query = "localization=false&tickers=false&community_data=false&developer_data=false"
    body = (await client.get(f"{CG}/coins/dash?{query}")).json()
    assert_shape(body, samples.COIN_DETAIL)
    assert "tickers" not in body and "localization" not in body
    missing = await client.get(f"{CG}/coins/bitcoinn")
    assert missing.status_code == 404
    assert missing.json() == {"error": "coin not found"}


async def test_synthetic_universe_is_served(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"{CG}/coins/synth-00020")).json()
    assert body["id"] == "synth-00020" and body["market_data"]["current_price"]["usd"] > 0
    assert (await client.get(f"{CG}/coins/synth-00021")).status_code == 404


async def test_threexpl_shape(client: httpx.AsyncClient) -> None:
    body = (await client.get("/3xpl/?from=dash&library=blockchains")).json()
    assert_shape(body, samples.THREEXPL_DASH)
    dash = body["data"]["blockchains"]["dash"]
    assert 2.0 < dash["events_24h"]["dash-main"] / 17_423 < 4.0  # events, not transactions


async def test_threexpl_all_chains_and_unknown_chain(client: httpx.AsyncClient) -> None:
    body = (await client.get("/3xpl?from=all&library=blockchains")).json()
    chains = set(body["data"]["blockchains"])
    assert {"bitcoin", "ethereum", "dash", "digibyte", "monero", "ecash", "synth-00001"} <= chains
    missing = await client.get("/3xpl/?from=ravencoin")
    assert missing.status_code == 404
    assert missing.json()["context"]["code"] == 404 and missing.json()["data"] is None


async def test_blockchair_chain_stats_shape(client: httpx.AsyncClient) -> None:
    body = (await client.get("/blockchair/dash/stats?key=k")).json()
    assert_shape(body, samples.BLOCKCHAIR_DASH)
    assert body["context"]["code"] == 200


async def test_blockchair_all_stats_and_unsupported_chain(client: httpx.AsyncClient) -> None:
    body = (await client.get("/blockchair/stats?key=k")).json()
    assert {"bitcoin", "ethereum", "dash", "monero", "ecash"} <= set(body["data"])
    assert "digibyte" not in body["data"]
    assert_shape(body["data"]["bitcoin"]["data"], samples.BLOCKCHAIR_DASH["data"])
    missing = await client.get("/blockchair/digibyte/stats?key=k")
    assert missing.status_code == 404 and missing.json()["context"]["code"] == 404


async def test_nearblocks_stats_and_charts(client: httpx.AsyncClient) -> None:
    stats = (await client.get("/nearblocks/v1/stats")).json()
    assert_shape(stats, samples.NEARBLOCKS_STATS)
    charts = (await client.get("/nearblocks/v1/charts/latest")).json()["charts"]
    assert len(charts) == 15
    for row in charts:
        assert_shape(row, samples.NEARBLOCKS_CHARTS_ROW)
    assert [row["date"] for row in charts] == sorted((row["date"] for row in charts), reverse=True)


async def test_nano_actions(client: httpx.AsyncClient) -> None:
    count = (await client.post("/nano", json={"action": "block_count"})).json()
    assert_shape(count, samples.NANO_BLOCK_COUNT)
    assert int(count["cemented"]) <= int(count["count"])
    supply = (await client.post("/nano/", json={"action": "available_supply"})).json()
    assert_shape(supply, samples.NANO_AVAILABLE_SUPPLY)
    telemetry = (await client.post("/nano", json={"action": "telemetry"})).json()
    assert telemetry["block_count"] == count["count"]


async def test_nano_errors_are_http_200(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/nano", json={"action": "no_such_action"})
    assert (unknown.status_code, unknown.json()) == (200, {"error": "Unknown command"})
    garbage = await client.post("/nano", content=b"{not json")
    assert (garbage.status_code, garbage.json()) == (200, {"error": "Unable to parse JSON"})


async def test_values_are_deterministic_for_a_seed(client: httpx.AsyncClient) -> None:
    url = f"{CG}/simple/price?ids=bitcoin&vs_currencies=usd"
    first, second = (await client.get(url)).json(), (await client.get(url)).json()
    assert first == second  # same cache period, same seed
    assert 10_000 < first["bitcoin"]["usd"] < 1_000_000


async def test_unknown_paths(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nowhere/x")).status_code == 404
    assert (await client.get(f"{CG}/no/such/path")).status_code == 404
    assert (await client.get("/nearblocks/v2/nothing")).json() == {"message": "Not Found"}
