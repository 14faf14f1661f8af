"""``GET /api/limits`` and ``DELETE /api/limits[/{source}]`` in process, then ``coinharvest
run`` as a user starts it: the quota plan at start-up, the limit series of ``/metrics``, the
limits of its live engine and a reset through its API."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from coinharvest.coins import load_coins
from coinharvest.emulator import RunningEmulator
from coinharvest.engine import Engine
from coinharvest.engine.adaptive import AdaptiveOptions, key_id
from coinharvest.models import Coin, LearnedLimit, SourceLimits
from coinharvest.service.api import ServiceState
from coinharvest.service.limits import LimitsDesk
from coinharvest.service.metrics import Metrics
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.storage import Store

from .conftest import FAST_CLIENT, TOKEN, client_for, samples, service, service_env

COINS = load_coins()
LIMITS = {"coingecko": SourceLimits(4, 0.0, 30, quota_per_month=10_000), "nano": SourceLimits(2)}
KEYS = {"coingecko": key_id("k"), "nano": ""}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def saved(source: str, key: str, concurrency: float) -> LearnedLimit:
    at = datetime.now(UTC) - timedelta(minutes=5)
    return LearnedLimit(source, key, concurrency, 0.0, None, at)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}") as opened:
        await opened.save_learned_limits([saved("coingecko", KEYS["coingecko"], 2.0)])
        yield opened


def engine() -> Engine:
    sources = {name: SimulatedSource(name, default_latency=0.3) for name in LIMITS}
    return Engine(sources, limits=LIMITS, adaptive=AdaptiveOptions(key_ids=KEYS))


def state(store: Store, live: Engine | None = None, token: str | None = TOKEN) -> ServiceState:
    desk = LimitsDesk(store.engine, LIMITS, KEYS, adaptive=True, engine=live, resetter=store)
    return ServiceState(
        db=store.engine, metrics=Metrics(), coins=lambda: COINS, api_token=token, limits=desk
    )


async def test_limits_without_a_desk_are_an_empty_list(store: Store) -> None:
    plain = ServiceState(db=store.engine, metrics=Metrics(), coins=lambda: COINS)
    async with client_for(plain) as api:
        answer = await api.get("/api/limits")
        deleted = await api.delete("/api/limits", headers=AUTH)
    assert answer.status_code == 200 and answer.json() == {"live": False, "sources": []}
    assert deleted.status_code == 405  # no token, no desk: no reset


async def test_limits_from_the_database_without_an_engine(store: Store) -> None:
    async with client_for(state(store)) as api:
        body = (await api.get("/api/limits")).json()
    assert body["live"] is False
    rows = {row["source"]: row for row in body["sources"]}
    assert rows["coingecko"] == {
        "source": "coingecko",
        "adaptive": True,
        "concurrency": 2,  # learned, stored in the database
        "max_concurrency": 4,
        "rate_per_minute": 30.0,
        "max_rate_per_minute": 30.0,
        "ceiling_per_minute": None,
        "quota_used_day": 0,
        "quota_used_month": 0,
        "quota_today": rows["coingecko"]["quota_today"],  # the month's share: date-dependent
        "quota_per_month": 10_000,
    }
    assert 0 < rows["coingecko"]["quota_today"] <= 10_000
    # No rate limit and no quota: null, never Infinity (not JSON).
    assert rows["nano"]["rate_per_minute"] is None and rows["nano"]["max_rate_per_minute"] is None
    assert rows["nano"]["quota_used_day"] is None and rows["nano"]["quota_today"] is None


async def test_reset_needs_the_token_and_a_known_source(store: Store) -> None:
    async with client_for(state(store)) as api:
        missing = await api.delete("/api/limits/coingecko")
        wrong = await api.delete("/api/limits", headers={"Authorization": "Bearer nope"})
        unknown = await api.delete("/api/limits/nope", headers=AUTH)
        done = await api.delete("/api/limits/coingecko", headers=AUTH)
        again = await api.delete("/api/limits", headers=AUTH)
        after = (await api.get("/api/limits")).json()
    for refused in (missing, wrong):
        assert refused.status_code == 401 and refused.json()["status"] == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert unknown.status_code == 404 and "unknown source: nope" in unknown.json()["error"]
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["source"], body["forgotten"], body["engine_reset"]) == ("coingecko", 1, False)
    assert "keeps what it learned in memory" in body["message"]  # honest: no engine here
    assert again.json()["forgotten"] == 0
    assert {r["source"]: r["concurrency"] for r in after["sources"]}["coingecko"] == 4
    async with client_for(state(store, token=None)) as api:
        assert (await api.delete("/api/limits", headers=AUTH)).status_code == 405


async def test_reset_of_a_live_engine_and_409_while_it_runs(store: Store) -> None:
    live = engine()
    live.adaptations["coingecko"].restore(saved("coingecko", KEYS["coingecko"], 2.0), 300, 0)
    async with client_for(state(store, live)) as api:
        before = (await api.get("/api/limits")).json()
        run = asyncio.ensure_future(live.run([Coin("AAA", "A", {"nano": "a"}, (("nano",),))]))
        while not live.running:
            await asyncio.sleep(0.005)
        busy = await api.delete("/api/limits/coingecko", headers=AUTH)
        await run
        done = await api.delete("/api/limits/coingecko", headers=AUTH)
        after = (await api.get("/api/limits")).json()
    assert before["live"] is True
    assert {r["source"]: r["concurrency"] for r in before["sources"]}["coingecko"] == 2
    assert busy.status_code == 409 and "run is going" in busy.json()["error"]
    assert done.status_code == 200 and done.json()["engine_reset"] is True
    assert "starts again from the configured limits" in done.json()["message"]
    assert {r["source"]: r["concurrency"] for r in after["sources"]}["coingecko"] == 4


# --------------------------------------------------------------------------- coinharvest run


async def test_run_logs_quota_plans_and_shows_its_limits(
    tmp_path: Path, emu_fast: RunningEmulator
) -> None:
    env = service_env(
        emu_fast,
        tmp_path / "run.db",
        **FAST_CLIENT,
        COINHARVEST_API_TOKEN=TOKEN,
        COINGECKO_QUOTA_PER_MONTH="100000",
        NEARBLOCKS_QUOTA_PER_DAY="5",  # 1 request a run × 24 runs a day: too many
    )
    async with service(["run"], env) as svc:
        plan = await svc.wait_for_line(r"INFO service quota: (.* coingecko requests .*)")
        over = await svc.wait_for_line(r"WARNING .*quota: (.*) would exceed nearblocks's quota")
        async with httpx.AsyncClient(base_url=svc.url or "", timeout=10) as http:
            run = await _first_run(http)
            metrics = samples((await http.get("/metrics")).text)
            limits = (await http.get("/api/limits")).json()
            reset = await http.delete("/api/limits/coingecko", headers=AUTH)
        svc.signal(signal.SIGTERM)
        assert await svc.wait(timeout=20) == 0, svc.log
    assert plan.group(1) == "4 coingecko requests × 24 runs × 30 days = 2,880 of 100,000/month"
    assert over.group(1) == "1 nearblocks requests × 24 runs = 24 of 5/day"
    assert "its jobs will be deferred when the quota is spent" in svc.log
    sent = sum(1 for j in run["jobs"] if j["source"] == "nearblocks" and j["started_s"] is not None)
    day = frozenset({("source", "nearblocks"), ("period", "day")})
    assert metrics[("coinharvest_source_quota_used", day)] == sent >= 1
    assert metrics[("coinharvest_source_quota_limit", day)] == 5
    cg = frozenset({("source", "coingecko")})
    assert metrics[("coinharvest_source_concurrency_ceiling", cg)] == 1  # public plan
    assert ("coinharvest_source_rate_ceiling_per_minute", cg) in metrics
    assert limits["live"] is True
    assert {r["source"] for r in limits["sources"]} >= {"coingecko", "nearblocks", "3xpl"}
    assert reset.status_code == 200, reset.text
    assert reset.json()["engine_reset"] is True and reset.json()["forgotten"] == 1


async def _first_run(http: httpx.AsyncClient) -> dict[str, Any]:
    """The first run once finished, with its job timeline."""
    for _ in range(300):
        runs = (await http.get("/api/runs")).json()["runs"]
        if runs and runs[-1]["finished_at"]:
            detail: dict[str, Any] = (await http.get(f"/api/runs/{runs[-1]['run_id']}")).json()
            return detail
        await asyncio.sleep(0.1)
    raise AssertionError("the first run did not finish")
