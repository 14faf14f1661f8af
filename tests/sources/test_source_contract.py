"""Every built-in source against the emulator over loopback HTTP: answers and failures.

Each failure raises the documented error for the whole job (the engine then fails the
job's coins with it); nothing partial is returned.
"""

from __future__ import annotations

from typing import Any

import pytest

from coinharvest.emulator import RunningEmulator, UpstreamName
from coinharvest.errors import (
    BadResponse,
    Blocked,
    ClientError,
    RateLimited,
    SourceError,
    TransientError,
    UnknownCoin,
)
from coinharvest.models import CoinAnswer, Observation
from coinharvest.sources.base import FetchResult

from .sourcekit import COINS, SOURCES, coins_for, make_source

pytestmark = pytest.mark.parametrize("name", SOURCES)

#: Metrics every coin of each source must get on a happy path.
EXPECTED_METRICS = {
    "coingecko": {"price_usd", "market_cap_usd", "volume_24h_usd", "price_change_24h_pct",
                  "circulating_supply"},
    "3xpl": {"events_24h", "block_height", "block_age_s", "mempool_events"},
    "blockchair": {"tx_count_24h", "block_height", "mempool_tx", "onchain_volume_24h",
                   "onchain_volume_24h_usd"},
    "nearblocks": {"tx_total", "tps", "avg_block_time_s", "nodes_online", "tx_count_24h"},
    "nano": {"block_count", "cemented_count", "unchecked_count"},
}  # fmt: skip

UNKNOWN_IDS = {
    "coingecko": "bitcoinn",
    "3xpl": "no-such-chain",
    "blockchair": "no-such-chain",
    "nearblocks": "aurora",
    "nano": "banano",
}


async def fetch(
    name: UpstreamName,
    emu: RunningEmulator,
    *,
    env: dict[str, str] | None = None,
    ids: Any = None,
    timeout_s: float = 3.0,
    times: int = 1,
) -> FetchResult:
    """Build source `name` against the emulator, fetch `times` times, return the last answer."""
    if name == "blockchair":  # keyless Blockchair is blocked, as the real one is
        env = {"BLOCKCHAIR_API_KEY": "test-key", **(env or {})}
    source = make_source(name, emu.base_urls[name], env, timeout_s)
    try:
        result: FetchResult = {}
        for _ in range(times):
            result = await source.fetch(coins_for(name, ids))
        return result
    finally:
        await source.aclose()


def observations(result: FetchResult, symbol: str) -> list[Observation]:
    got = result[symbol]
    assert isinstance(got, CoinAnswer), got
    return got.observations


async def test_happy_path_gives_every_metric_of_every_coin(
    name: UpstreamName, emu: RunningEmulator
) -> None:
    result = await fetch(name, emu)
    assert set(result) == set(COINS[name])
    for symbol in COINS[name]:
        got = observations(result, symbol)
        assert {o.metric for o in got} == EXPECTED_METRICS[name]
        assert all(o.symbol == symbol and o.source == name for o in got)
        assert all(isinstance(o.value, float) for o in got)
    stats = await emu.stats()
    assert sum(sum(k.values()) for k in stats["requests"][name].values()) == 1  # one request


async def test_429_with_retry_after_seconds(name: UpstreamName, emu: RunningEmulator) -> None:
    # A scheduled 429 storm: every upstream then answers 429 with ``Retry-After: 30``.
    await emu.set_upstream(name, faults={"storm": {"duration_s": 60, "retry_after_s": 30}})
    with pytest.raises(RateLimited) as info:
        await fetch(name, emu)
    assert info.value.source == name
    assert info.value.retry_after == 30
    assert "(retry after 30 s)" in str(info.value)


async def test_429_without_retry_after(name: UpstreamName, emu: RunningEmulator) -> None:
    await emu.set_upstream(name, limits={"min_interval_ms": 30_000, "retry_after": "never"})
    with pytest.raises(RateLimited) as info:
        await fetch(name, emu, times=2)
    if name == "coingecko":  # CoinGecko still sends x-ratelimit-reset (a date string)
        assert info.value.retry_after is not None and 28 <= info.value.retry_after <= 30
    else:  # no hint at all: the engine backs off exponentially
        assert info.value.retry_after is None


async def test_500_is_transient(name: UpstreamName, emu: RunningEmulator) -> None:
    await emu.set_upstream(name, faults={"error_500": 1.0})
    with pytest.raises(TransientError, match="HTTP 500"):
        await fetch(name, emu)


async def test_503_html_page_without_retry_after_is_transient(
    name: UpstreamName, emu: RunningEmulator
) -> None:
    await emu.set_upstream(name, faults={"error_503": 1.0})
    with pytest.raises(TransientError) as info:
        await fetch(name, emu)
    assert str(info.value) == f'{name}: HTTP 503: HTML page "503 Service Temporarily Unavailable"'


async def test_timeout_is_transient(name: UpstreamName, emu: RunningEmulator) -> None:
    await emu.set_upstream(name, faults={"hang": 1.0, "hang_s": 5.0})
    with pytest.raises(TransientError, match=r"timed out \(ReadTimeout\) after 0.3 s"):
        await fetch(name, emu, timeout_s=0.3)


@pytest.mark.parametrize("fault", ["malformed_json", "truncated_json"])
async def test_broken_json_is_a_bad_response(
    name: UpstreamName, fault: str, emu: RunningEmulator
) -> None:
    await emu.set_upstream(name, faults={fault: 1.0})
    with pytest.raises(BadResponse, match=rf"^{name}: .*malformed JSON"):
        await fetch(name, emu)


async def test_html_403_is_a_client_error_with_a_short_message(
    name: UpstreamName, emu: RunningEmulator
) -> None:
    await emu.set_upstream(name, faults={"html_403": 1.0})
    with pytest.raises(ClientError) as info:
        await fetch(name, emu)
    assert info.value.status == 403
    assert str(info.value) == (
        f'{name}: HTTP 403: HTML page "Access denied | api host used Cloudflare to restrict access"'
    )


async def test_connection_reset_is_transient(name: UpstreamName, emu: RunningEmulator) -> None:
    await emu.set_upstream(name, faults={"reset": 1.0})
    with pytest.raises(TransientError):
        await fetch(name, emu)


async def test_unknown_id_fails_that_coin_only(name: UpstreamName, emu: RunningEmulator) -> None:
    ids = {**COINS[name], "ZZZ": UNKNOWN_IDS[name]}
    result = await fetch(name, emu, ids=ids)
    error = result["ZZZ"]
    assert isinstance(error, UnknownCoin)
    assert str(error) == f"unknown to {name}: {UNKNOWN_IDS[name]}"
    for symbol in COINS[name]:
        assert observations(result, symbol)


async def test_unknown_id_alone(name: UpstreamName, emu: RunningEmulator) -> None:
    result = await fetch(name, emu, ids={"ZZZ": UNKNOWN_IDS[name]})
    assert isinstance(result["ZZZ"], UnknownCoin)


KEYED = [n for n in SOURCES if n != "nano"]


async def test_missing_key_is_a_client_error(name: UpstreamName, emu: RunningEmulator) -> None:
    if name not in KEYED:
        pytest.skip("a Nano node takes no key")
    await emu.set_upstream(name, auth={"key_required": True})
    if name == "blockchair":  # keyless Blockchair: 430 "IP blacklisted", not a 4xx on the key
        with pytest.raises(Blocked, match="BLOCKCHAIR_API_KEY") as blocked:
            await fetch(name, emu, env={"BLOCKCHAIR_API_KEY": ""})
        assert "HTTP 430" in str(blocked.value)
        return
    with pytest.raises(ClientError) as info:
        await fetch(name, emu)
    assert info.value.status in (401, 402)
    assert "requir" in str(info.value) or "Missing" in str(info.value)


async def test_wrong_key_is_a_client_error_and_never_shown(
    name: UpstreamName, emu: RunningEmulator
) -> None:
    if name not in KEYED:
        pytest.skip("a Nano node takes no key")
    await emu.set_upstream(name, auth={"key_required": True, "valid_keys": ["the-good-key"]})
    secret = "s3cret-KEY-value"
    env = {f"{_prefix(name)}_API_KEY": secret}
    with pytest.raises(SourceError) as info:
        await fetch(name, emu, env=env)
    assert isinstance(info.value, ClientError) and not isinstance(info.value, RateLimited)
    assert info.value.status in (400, 401, 402)
    assert secret not in str(info.value) and secret not in repr(info.value)


async def test_right_key_is_accepted(name: UpstreamName, emu: RunningEmulator) -> None:
    if name not in KEYED:
        pytest.skip("a Nano node takes no key")
    await emu.set_upstream(name, auth={"key_required": True, "valid_keys": ["the-good-key"]})
    result = await fetch(name, emu, env={f"{_prefix(name)}_API_KEY": "the-good-key"})
    assert all(isinstance(v, CoinAnswer) for v in result.values())
    stats = await emu.stats()
    assert "the-good-key" in next(iter(stats["requests"][name].values()))


def _prefix(name: UpstreamName) -> str:
    return {"3xpl": "THREEXPL"}.get(name, name.upper())
