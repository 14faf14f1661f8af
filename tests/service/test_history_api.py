"""``/api/history/{symbol}`` pages and downsampling, ``/api/runs`` pages: over a real SQLite
file filled at fixed times (no wall clock: every request names its period)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serieskit import T0, fill_run, secs
from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.models import Coin
from coinharvest.service.api import ServiceState
from coinharvest.service.metrics import Metrics
from coinharvest.storage import open_database

from .conftest import client_for

COINS = [Coin("BTC", "Bitcoin", {"s": "bitcoin"}, (("s",),))]
SINCE, UNTIL = T0.isoformat(), (T0 + secs(1000)).isoformat()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    await fill_run(engine, "r1", T0, [(T0 + secs(i), float(i)) for i in range(1000)])
    for i in range(2, 6):
        await fill_run(engine, f"r{i}", T0 + secs(i), [], symbol="ETH")
    yield engine
    await engine.dispose()


@pytest.fixture
async def api(db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(ServiceState(db=db, metrics=Metrics(), coins=lambda: COINS)) as c:
        yield c


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_history_pages_cover_every_point_once(api: httpx.AsyncClient) -> None:
    values: list[float] = []
    params: dict[str, Any] = {"since": SINCE, "limit": 300}
    while True:
        body = await get(api, "/api/history/btc", **params)
        assert len(body["points"]) <= 300 and body["downsampled"] is False
        values += [p["value"] for p in body["points"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert values == [float(i) for i in range(1000)]
    default = await get(api, "/api/history/BTC")
    assert len(default["points"]) == 1000 and default["next_cursor"] is None
    window = await get(api, "/api/history/BTC", since=SINCE, until=(T0 + secs(5)).isoformat())
    assert [p["value"] for p in window["points"]] == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_max_points_downsamples_to_the_last_value_per_bucket(api: httpx.AsyncClient) -> None:
    body = await get(api, "/api/history/BTC", since=SINCE, until=UNTIL, max_points=100)
    assert body["downsampled"] is True and body["bucket_s"] == 10
    assert [p["value"] for p in body["points"]] == [float(10 * b + 9) for b in range(100)]
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"cursor": "bm90IGEgY3Vyc29y.123456789abc"}, "cursor"),
        ({"cursor": "a b"}, "cursor"),
        ({"max_points": 1}, "max_points"),
        ({"max_points": 5001}, "max_points"),
        ({"limit": 10001}, "limit"),
        ({"until": "next week"}, "until"),
    ],
)
async def test_bad_paging_values_are_one_line_422s(
    api: httpx.AsyncClient, params: dict[str, Any], word: str
) -> None:
    response = await api.get("/api/history/BTC", params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "\n" not in error and error.startswith(word), error


async def test_a_cursor_of_another_query_or_with_max_points_is_a_422(
    api: httpx.AsyncClient,
) -> None:
    first = await get(api, "/api/history/BTC", limit=10)
    cursor = first["next_cursor"]
    for path, params in [
        ("/api/history/BTC", {"metric": "supply", "cursor": cursor}),
        ("/api/history/BTC", {"max_points": 10, "cursor": cursor}),
        ("/api/runs", {"cursor": cursor}),
        ("/api/history/BTC", {"cursor": cursor[:-1] + ("0" if cursor[-1] != "0" else "1")}),
    ]:
        response = await api.get(path, params=params)
        assert response.status_code == 422, response.text
        assert response.json()["error"].startswith("cursor: "), response.text


async def test_runs_pages_newest_first(api: httpx.AsyncClient) -> None:
    ids: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        body = await get(api, "/api/runs", **params)
        ids += [r["run_id"] for r in body["runs"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert ids == ["r5", "r4", "r3", "r2", "r1"]
