"""The registry: building sources, effective limits, and plug-ins by both routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinharvest.config import Settings, load_settings
from coinharvest.engine import Engine
from coinharvest.errors import ConfigError
from coinharvest.models import Coin, CoinStatus, SourceLimits
from coinharvest.sources.base import close_sources
from coinharvest.sources.coingecko import PLAN_LIMITS, CoinGeckoSource
from coinharvest.sources.http import HttpOptions
from coinharvest.sources.nano import NanoSource
from coinharvest.sources.registry import (
    BUILTIN_SOURCES,
    ENTRY_POINT_GROUP,
    SPACING_GUARD_S,
    available_sources,
    build_sources,
    effective_batch_sizes,
    effective_limits,
)

from .loopback import Answer, Loopback

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLUGIN = "blockcypher_source:BlockCypherSource"
BLOCKCYPHER_DASH = {"name": "DASH.main", "height": 2379512, "hash": "00ab", "peer_count": 8,
                    "unconfirmed_count": 12, "time": "2026-11-28T10:00:00Z"}  # fmt: skip


@pytest.fixture
def examples_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


@pytest.fixture
def entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, examples_on_path: None) -> None:
    """An installed distribution registering the example under ``coinharvest.sources``."""
    info = tmp_path / "blockcypher_example-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: blockcypher-example\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nblockcypher = {PLUGIN}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def settings(**env: str) -> Settings:
    return load_settings(env, None)


def test_builtins_are_registered_under_their_names() -> None:
    assert list(BUILTIN_SOURCES) == ["coingecko", "3xpl", "blockchair", "nearblocks", "nano"]
    assert all(cls.name == name for name, cls in BUILTIN_SOURCES.items())


async def test_build_sources_uses_base_urls_over_settings() -> None:
    built = build_sources(
        settings(COINGECKO_BASE_URL="http://from-settings/api/v3", NANO_RPC_URL="http://node:7076"),
        names=["coingecko", "nano"],
        base_urls={"coingecko": "http://emulator/coingecko/api/v3"},
    )
    try:
        assert isinstance(built["coingecko"], CoinGeckoSource)
        assert built["coingecko"].http.base_url == "http://emulator/coingecko/api/v3"
        assert isinstance(built["nano"], NanoSource)
        assert built["nano"].http.base_url == "http://node:7076"
    finally:
        for source in built.values():
            await source.aclose()


def test_unknown_source_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown source 'coinbase' \\(known: 3xpl, blockchair"):
        build_sources(settings(), names=["coinbase"])


def test_effective_limits_apply_overrides_and_the_guard() -> None:
    sources = {"coingecko": CoinGeckoSource(plan="demo")}
    limits = effective_limits(settings(COINGECKO_MIN_INTERVAL_MS="500"), sources)
    assert limits["coingecko"] == SourceLimits(
        3, 0.5 + SPACING_GUARD_S, 30, 60 + SPACING_GUARD_S, quota_per_month=10_000
    )
    plain = effective_limits(settings(), sources, guard_s=0.0)
    assert plain["coingecko"] == PLAN_LIMITS["demo"]


def test_coingecko_limits_follow_the_plan() -> None:
    """Keyless public is documented at 5-15/min: its default must not exceed that."""
    public = CoinGeckoSource().default_limits
    assert public.rate_per_window is not None and public.rate_per_window <= 5
    assert public.min_interval_s >= 60 / 5 and public.max_concurrency == 1
    demo = SourceLimits(3, 2.0, 30, quota_per_month=10_000)
    assert CoinGeckoSource(plan="demo").default_limits == demo
    keyed = CoinGeckoSource(HttpOptions(api_key="k"), plan="public").default_limits
    assert keyed == PLAN_LIMITS["demo"]  # a key on "public" is sent, and limited, as demo
    pro = CoinGeckoSource(plan="pro").default_limits
    assert pro.rate_per_window is not None and pro.rate_per_window >= 250


def test_batch_size_override_and_ceiling() -> None:
    sources = {"coingecko": CoinGeckoSource()}
    assert effective_batch_sizes(settings(), sources) == {"coingecko": 250}
    assert effective_batch_sizes(settings(COINGECKO_BATCH_SIZE="100"), sources) == {
        "coingecko": 100
    }
    with pytest.raises(
        ConfigError,
        match=r"^COINGECKO_BATCH_SIZE=300 is invalid: must be an integer from 1 to 250$",
    ):
        effective_batch_sizes(settings(COINGECKO_BATCH_SIZE="300"), sources)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchmodule_xyz:Source", "cannot import nosuchmodule_xyz"),
        ("blockcypher_source:Missing", "blockcypher_source has no Missing"),
        ("blockcypher_source:UnknownCoin", "is not a subclass of coinharvest.sources.Source"),
        ("coinharvest.sources.http:HttpSource", "HttpSource has no source name"),
        ("coinharvest.sources.coingecko:CoinGeckoSource", None),  # a built-in again: fine
    ],
)
def test_bad_extra_sources_give_one_line_errors(
    spec: str, message: str | None, examples_on_path: None
) -> None:
    if message is None:
        assert "coingecko" in available_sources(settings(EXTRA_SOURCES=spec))
        return
    with pytest.raises(ConfigError) as info:
        available_sources(settings(EXTRA_SOURCES=spec))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(f"EXTRA_SOURCES entry {spec!r}")


def test_a_plugin_may_not_take_a_builtin_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "clash_plugin.py").write_text(
        "from coinharvest.sources.simulated import SimulatedSource\n"
        "class Clash(SimulatedSource):\n    name = 'coingecko'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="source name 'coingecko' is already used by"):
        available_sources(settings(EXTRA_SOURCES="clash_plugin:Clash"))


def test_plugin_loads_through_extra_sources(examples_on_path: None) -> None:
    classes = available_sources(settings(EXTRA_SOURCES=f" {PLUGIN} "))
    assert classes["blockcypher"].__name__ == "BlockCypherSource"


def test_plugin_loads_through_an_entry_point(entry_point: None) -> None:
    classes = available_sources(settings())
    assert classes["blockcypher"].__name__ == "BlockCypherSource"


@pytest.mark.parametrize("route", ["extra_sources", "entry_point"])
async def test_plugin_collects_through_the_engine_with_its_own_limits(
    route: str, canned: Loopback, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("entry_point")  # puts examples/ on the path too
    env = {
        "BLOCKCYPHER_BASE_URL": canned.url,
        "BLOCKCYPHER_MIN_INTERVAL_MS": "150",
        "BLOCKCYPHER_API_KEY": "bc-token",
    }
    if route == "extra_sources":
        env["EXTRA_SOURCES"] = PLUGIN
    config = load_settings(env, None)
    canned.handler = lambda req: (
        Answer.json(200, BLOCKCYPHER_DASH) if "/v1/dash/main" in req.path
        else Answer.json(404, {"error": "Invalid blockchain"})
    )  # fmt: skip
    sources = build_sources(config, names=["blockcypher"])
    limits = effective_limits(config, sources)
    assert limits["blockcypher"] == SourceLimits(
        1, 0.15 + SPACING_GUARD_S, 100, 3600 + SPACING_GUARD_S
    )
    coins = [
        Coin("DASH", "Dash", {"blockcypher": "dash"}, (("blockcypher",),)),
        Coin("LTC", "Litecoin", {"blockcypher": "ltcx"}, (("blockcypher",),)),
    ]
    engine = Engine(sources, limits=limits, batch_sizes=effective_batch_sizes(config, sources))
    try:
        summary = await engine.run(coins)
    finally:
        await close_sources(engine.sources.values())
    dash = next(r for r in summary.results if r.symbol == "DASH")
    assert dash.status is CoinStatus.OK
    assert {o.metric: o.value for o in dash.observations} == {
        "block_height": 2379512.0, "mempool_tx": 12.0, "peer_count": 8.0,
    }  # fmt: skip
    ltc = next(r for r in summary.results if r.symbol == "LTC")
    assert ltc.status is CoinStatus.FAILED and ltc.error == "unknown to blockcypher: ltcx"
    arrivals = sorted(r.at for r in canned.requests)
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 0.150
    assert all("token=bc-token" in r.path for r in canned.requests)
