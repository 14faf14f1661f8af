"""API keys: where each upstream reads them and how it answers a missing or wrong one."""

from __future__ import annotations

import httpx

from coinharvest.emulator import RunningEmulator

from .real import real_payload

PING = "/coingecko/api/v3/ping"


async def test_coingecko_demo_key_by_header_or_query(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("coingecko", auth={"key_required": True, "valid_keys": ["demo-1"]})
    assert (await client.get(PING, headers={"x-cg-demo-api-key": "demo-1"})).status_code == 200
    assert (await client.get(f"{PING}?x_cg_demo_api_key=demo-1")).status_code == 200
    stats = await emu.stats()
    assert stats["requests"]["coingecko"]["/ping"] == {"demo-1": 2}


async def test_coingecko_missing_key_is_401_10002(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("coingecko", auth={"key_required": True})
    response = await client.get(PING)
    assert response.status_code == 401
    status = response.json()["status"]
    assert status["error_code"] == 10002
    assert status["error_message"].startswith("API Key Missing")
    assert status["timestamp"].endswith("+00:00")


async def test_coingecko_keyless_allowed_when_not_required(client: httpx.AsyncClient) -> None:
    assert (await client.get(PING)).status_code == 200


async def test_coingecko_pro_key_on_demo_host_is_400_10010(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    response = await client.get(PING, headers={"x-cg-pro-api-key": "pro-1"})
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == 10010  # at the top level in this shape
    assert "pro-api.coingecko.com" in body["status"]["error_message"]


async def test_coingecko_demo_key_on_pro_host_is_400_10011(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("coingecko", auth={"plan": "pro", "valid_keys": ["pro-1"]})
    response = await client.get(PING, headers={"x-cg-demo-api-key": "demo-1"})
    assert response.status_code == 400 and response.json()["error_code"] == 10011
    wrong = await client.get(PING, headers={"x-cg-pro-api-key": "nope"})
    assert wrong.status_code == 400 and wrong.json()["error_code"] == 10011
    ok = await client.get(PING, headers={"x-cg-pro-api-key": "pro-1"})
    assert ok.status_code == 200


async def test_threexpl_token_by_query_or_header(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("3xpl", auth={"key_required": True, "valid_keys": ["t1"]})
    assert (await client.get("/3xpl/?from=dash&token=t1")).status_code == 200
    header = await client.get("/3xpl/?from=dash", headers={"Xpl-Token": "t1"})
    assert header.status_code == 200
    missing = await client.get("/3xpl/?from=dash")
    assert missing.status_code == 401 and missing.json()["context"]["code"] == 401
    assert (await client.get("/3xpl/?from=dash&token=bad")).status_code == 401


async def test_blockchair_invalid_key_is_402(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("blockchair", auth={"valid_keys": ["k1"]})
    assert (await client.get("/blockchair/stats?key=k1")).status_code == 200
    bad = await client.get("/blockchair/stats?key=k2")
    assert bad.status_code == 402
    assert bad.json()["context"]["error"].startswith("Invalid API token")


async def test_blockchair_accepts_any_key_by_default(client: httpx.AsyncClient) -> None:
    for key in ("demo", "anything-at-all"):
        assert (await client.get(f"/blockchair/bitcoin/stats?key={key}")).status_code == 200


async def test_blockchair_keyless_is_430_asking_for_a_key(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    recorded = real_payload("blockchair_430_body_2023-04-20.json")
    for path in ("/blockchair/stats", "/blockchair/bitcoin/stats", "/blockchair/stats?key="):
        response = await client.get(path)
        assert response.status_code == 430, path
        assert "retry-after" not in response.headers
        body = response.json()
        assert body["data"] is None
        assert body["context"]["code"] == 430
        assert body["context"]["error"] == recorded["context"]["error"]  # verbatim
        assert "Please apply for an API key" in body["context"]["error"]
        assert set(body["context"]) == set(recorded["context"])
        assert set(body["context"]["cache"]) == set(recorded["context"]["cache"])
        assert set(body["context"]["api"]) == set(recorded["context"]["api"])
    stats = await emu.stats()
    assert stats["responses"]["blockchair"] == {"430": 3}
    assert stats["rate_limited"]["total"] == 0  # refused for want of a key, not a limit


async def test_blockchair_keyless_allowed_when_switched_off(
    emu: RunningEmulator, client: httpx.AsyncClient
) -> None:
    await emu.set_upstream("blockchair", auth={"key_required": False})
    assert (await client.get("/blockchair/stats")).status_code == 200


async def test_nearblocks_bearer_key(emu: RunningEmulator, client: httpx.AsyncClient) -> None:
    await emu.set_upstream("nearblocks", auth={"key_required": True, "valid_keys": ["nb"]})
    ok = await client.get("/nearblocks/v1/stats", headers={"Authorization": "Bearer nb"})
    assert ok.status_code == 200
    missing = await client.get("/nearblocks/v1/stats")
    assert missing.status_code == 401 and "message" in missing.json()
