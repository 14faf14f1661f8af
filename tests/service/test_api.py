"""The HTTP API in-process (ASGI, no server): data routes, health, and every error code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from coinharvest.coins import load_coins
from coinharvest.engine import Engine
from coinharvest.engine.hooks import MemorySink
from coinharvest.models import Coin
from coinharvest.service.api import ServiceState
from coinharvest.service.app import RunTracker
from coinharvest.service.metrics import Metrics
from coinharvest.service.scheduler import Scheduler
from coinharvest.sources.simulated import SimulatedSource

from .conftest import TOKEN, Filled, client_for

COINS = load_coins()
Client = Callable[..., Any]


@pytest.fixture
async def api(db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The API as `coinharvest serve` has it: no scheduler, no token."""
    async with client_for(ServiceState(db=db, metrics=Metrics(), coins=lambda: COINS)) as c:
        yield c


def slow_scheduler(latency: float = 1.0) -> tuple[Scheduler, RunTracker]:
    source = SimulatedSource("sim", default_latency=latency)
    tracker = RunTracker(MemorySink())
    engine = Engine({"sim": source}, sink=tracker)
    coin = Coin("AAA", "Coin A", {"sim": "a"}, (("sim",),))
    return Scheduler(engine, lambda: [coin], interval_s=3600, grace_s=0), tracker


def assert_error(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in body["error"], body
    return body


# --------------------------------------------------------------------------- data routes


async def test_coins_latest_history_runs(api: httpx.AsyncClient, filled: Filled) -> None:
    coins = (await api.get("/api/coins")).json()["coins"]
    assert [c["symbol"] for c in coins] == [c.symbol for c in COINS]
    assert coins[0]["ids"] and coins[0]["chains"]

    values = (await api.get("/api/latest")).json()["values"]
    btc = {v["metric"]: v for v in values if v["symbol"] == "BTC"}
    assert btc["price_usd"]["source"] == "coingecko"
    assert {"value", "confidence", "age_s", "observed_at"} <= set(btc["price_usd"])
    only = (await api.get("/api/latest", params={"symbol": "eth"})).json()["values"]
    assert only and {v["symbol"] for v in only} == {"ETH"}

    history = (await api.get("/api/history/btc", params={"metric": "price_usd"})).json()
    assert history["symbol"] == "BTC" and len(history["points"]) == len(filled.summaries)
    recent = await api.get("/api/history/BTC", params={"since": "1d"})
    assert len(recent.json()["points"]) == len(filled.summaries)
    future = await api.get("/api/history/BTC", params={"since": "2999-01-01"})
    assert future.status_code == 200 and future.json()["points"] == []

    runs = (await api.get("/api/runs", params={"limit": 2})).json()["runs"]
    assert len(runs) == 2
    assert {r["run_id"] for r in runs} <= {s.run_id for s in filled.summaries}


async def test_run_detail_has_coins_and_job_timeline(
    api: httpx.AsyncClient, filled: Filled
) -> None:
    summary = filled.summaries[0]
    detail = (await api.get(f"/api/runs/{summary.run_id[:8]}")).json()
    assert detail["run"]["run_id"] == summary.run_id
    assert len(detail["coins"]) == summary.coins_total
    assert len(detail["jobs"]) == len(summary.jobs)
    job = detail["jobs"][0]
    assert {"source", "symbols", "queued_s", "started_s", "ended_s", "status"} <= set(job)


async def test_openapi_document_lists_the_routes(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    for path in ("/health", "/metrics", "/api/coins", "/api/latest", "/api/runs"):
        assert path in doc["paths"], path
    assert "/api/history/{symbol}" in doc["paths"]
    assert "/api/runs/{run_id}" in doc["paths"]


async def test_metrics_endpoint_is_prometheus_text(api: httpx.AsyncClient) -> None:
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"coinharvest_runs", "coinharvest_requests", "coinharvest_skipped_ticks"} <= names


async def test_dashboard_and_its_assets_are_served(api: httpx.AsyncClient) -> None:
    page = await api.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert (await api.get(asset)).status_code == 200


# --------------------------------------------------------------------------- health


async def test_health_without_scheduler_is_ok(api: httpx.AsyncClient, filled: Filled) -> None:
    response = await api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["scheduler"] == "not running" and body["scheduler_alive"] is False
    assert body["database"] == "reachable"
    assert body["last_run"]["run_id"] == filled.summaries[-1].run_id


async def test_health_is_503_when_the_scheduler_loop_died(db: AsyncEngine) -> None:
    sched, _ = slow_scheduler()

    async def crash() -> None:
        raise RuntimeError("boom")

    dead = asyncio.get_running_loop().create_task(crash())
    await asyncio.gather(dead, return_exceptions=True)
    state = ServiceState(db=db, metrics=Metrics(), coins=lambda: COINS, scheduler=sched)
    state.loop_task = dead
    async with client_for(state) as c:
        response = await c.get("/health")
    assert response.status_code == 503
    assert response.json()["scheduler"] == "dead"
    assert response.json()["scheduler_alive"] is False


async def test_health_with_a_live_scheduler_is_ok(db: AsyncEngine) -> None:
    sched, _ = slow_scheduler()
    loop_task = asyncio.get_running_loop().create_task(sched.serve())
    state = ServiceState(db=db, metrics=Metrics(), coins=lambda: COINS, scheduler=sched)
    state.loop_task = loop_task
    try:
        await asyncio.sleep(0.05)
        async with client_for(state) as c:
            body = (await c.get("/health")).json()
        assert body["status"] == "ok" and body["scheduler"] == "running"
        assert body["scheduler_alive"] is True and body["ticks"] == 1
    finally:
        sched.request_stop()
        sched.request_stop()
        await loop_task


async def test_health_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    gone = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db")
    state = ServiceState(db=gone, metrics=Metrics(), coins=lambda: COINS)
    async with client_for(state) as c:
        response = await c.get("/health")
        runs = await c.get("/api/runs")
    await gone.dispose()
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
    assert response.json()["database_error"]
    assert_error(runs, 503, "database unavailable")


# --------------------------------------------------------------------------- 404 / 422


async def test_unknown_things_are_404_json(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/api/history/NOPE"), 404, "unknown coin", "NOPE")
    assert_error(await api.get("/api/latest", params={"symbol": "NOPE"}), 404, "NOPE")
    assert_error(
        await api.get("/api/history/BTC", params={"metric": "price_usdd"}),
        404,
        "price_usdd",
        "known: ",
    )
    assert_error(await api.get("/api/runs/ffffffffffff"), 404, "unknown run")
    assert_error(await api.get("/api/nothing-here"), 404)


@pytest.mark.parametrize(
    ("path", "params", "reason"),
    [
        ("/api/runs", {"limit": "0"}, "limit"),
        ("/api/runs", {"limit": "501"}, "limit"),
        ("/api/runs", {"limit": "ten"}, "limit"),
        ("/api/history/BTC", {"since": "last tuesday"}, "since"),
        ("/api/history/BTC", {"metric": "Price USD!"}, "metric"),
        ("/api/history/B%20C", {}, "symbol"),
        ("/api/runs/not%20an%20id", {}, "run_id"),
    ],
)
async def test_bad_values_are_422_with_the_reason(
    api: httpx.AsyncClient, path: str, params: dict[str, str], reason: str
) -> None:
    body = assert_error(await api.get(path, params=params), 422, reason)
    assert body["detail"] and body["detail"][0]["msg"]


# --------------------------------------------------------------------------- POST /api/runs


async def test_post_runs_is_absent_without_a_token(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert_error(response, 405)  # GET /api/runs exists; the POST route does not
    doc = (await api.get("/openapi.json")).json()
    assert "post" not in doc["paths"]["/api/runs"]


async def test_post_runs_is_absent_without_a_scheduler(db: AsyncEngine) -> None:
    state = ServiceState(db=db, metrics=Metrics(), coins=lambda: COINS, api_token=TOKEN)
    async with client_for(state) as c:
        response = await c.post("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 405


@pytest.mark.parametrize(
    "header",
    [None, "", f"Basic {TOKEN}", "Bearer", "Bearer wrong-token-0123456789abc", f"Bearer {TOKEN}x"],
)
async def test_post_runs_needs_the_right_bearer_token(db: AsyncEngine, header: str | None) -> None:
    sched, tracker = slow_scheduler()
    state = ServiceState(
        db=db,
        metrics=Metrics(),
        coins=lambda: COINS,
        scheduler=sched,
        api_token=TOKEN,
        started_run=tracker.next_run_id,
    )
    headers = {"Authorization": header} if header is not None else {}
    async with client_for(state) as c:
        response = await c.post("/api/runs", headers=headers)
    assert_error(response, 401, "token")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert not sched.running


async def test_post_runs_starts_a_run_then_409_while_it_goes(db: AsyncEngine) -> None:
    sched, tracker = slow_scheduler(latency=0.5)
    state = ServiceState(
        db=db,
        metrics=Metrics(),
        coins=lambda: COINS,
        scheduler=sched,
        api_token=TOKEN,
        started_run=tracker.next_run_id,
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with client_for(state) as c:
        first = await c.post("/api/runs", headers=auth)
        assert first.status_code == 202, first.text
        run_id = first.json()["run_id"]
        assert run_id and first.json()["href"] == f"/api/runs/{run_id}"
        assert sched.running
        assert_error(await c.post("/api/runs", headers=auth), 409, "in progress")
        while sched.running:
            await asyncio.sleep(0.05)
        again = await c.post("/api/runs", headers=auth)
        assert again.status_code == 202 and again.json()["run_id"] != run_id
    while sched.running:
        await asyncio.sleep(0.05)
    assert sched.stats.runs == 2
