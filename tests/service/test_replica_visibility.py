"""Replicas made visible: the ``replicas`` table read on both backends, who is stale and who
leads (a pure rule on a fixed ``now``), ``/health``'s ``replication`` object, the
``coinharvest_leader`` / ``coinharvest_takeovers_total`` metrics, and the dashboard's
Replicas panel in headless Chromium.

Rows are written with times relative to the database's own clock as read by the test
(`database_now`), so nothing depends on what today's date is; the staleness margins used
(0.5 s fresh, 60 s stale against a 5 s limit) leave seconds of slack for a slow machine.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from storage.conftest import db_url, pg_server  # noqa: F401  # the two-backend fixtures

from coinharvest.engine import Engine
from coinharvest.models import Coin
from coinharvest.service.api import ServiceState, create_app
from coinharvest.service.app import http_server
from coinharvest.service.metrics import Metrics
from coinharvest.service.scheduler import Scheduler
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.storage import open_database
from coinharvest.storage.replica_queries import (
    ReplicaRow,
    database_now,
    replica_rows,
    replica_snapshot,
    replica_view,
    stale_after_s,
)
from coinharvest.storage.schema import replicas

from .conftest import client_for, samples

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def row(
    replica_id: str,
    *,
    age_s: float,
    leads_for_s: float | None = None,
    now: datetime = NOW,
    url: str | None = None,
) -> ReplicaRow:
    """A replica heard of `age_s` before `now`, leading for `leads_for_s` (None: follows)."""
    host, pid, _ = replica_id.split(":")
    return ReplicaRow(
        replica_id=replica_id,
        host=host,
        pid=int(pid),
        http_url=url,
        started_at=now - timedelta(hours=1),
        heartbeat_at=now - timedelta(seconds=age_s),
        leader_since=None if leads_for_s is None else now - timedelta(seconds=leads_for_s),
    )


# --------------------------------------------------------------------------- the rule


def test_stale_after_three_missed_checks_and_two_seconds() -> None:
    assert stale_after_s(1.0) == 5.0
    assert stale_after_s(0.2) == pytest.approx(2.6)
    view = replica_view([row("a:1:x", age_s=5.0), row("b:2:x", age_s=5.001)], NOW, 1.0)
    assert [(s.row.host, s.stale) for s in view.replicas] == [("a", False), ("b", True)]
    assert view.live == 1 and view.stale_after_s == 5.0


def test_the_leader_is_the_newest_leader_since_among_live_replicas() -> None:
    crashed = row("old:1:x", age_s=30, leads_for_s=3600)  # stale, still says it leads
    new = row("new:2:x", age_s=0.4, leads_for_s=12)
    follower = row("f:3:x", age_s=0.8)
    view = replica_view([follower, crashed, new], NOW, 1.0)
    assert view.leader is not None and view.leader.row.replica_id == "new:2:x"
    # not yet stale, not yet cleared: the newer mark wins over the old one
    fresh_old = row("old:1:x", age_s=2, leads_for_s=3600)
    assert replica_view([fresh_old, new], NOW, 1.0).leader.row.host == "new"  # type: ignore[union-attr]
    # only the crashed leader says it leads: nobody does
    assert replica_view([crashed, follower], NOW, 1.0).leader is None
    assert replica_view([], NOW, 1.0).leader is None


def test_ages_are_never_negative_and_rows_come_by_start_time() -> None:
    late = ReplicaRow(
        "z:9:x", "z", 9, None, NOW - timedelta(days=1), NOW + timedelta(seconds=0.003), None
    )
    early = ReplicaRow("y:8:x", "y", 8, None, NOW - timedelta(days=2), NOW, None)
    view = replica_view([late, early], NOW, 1.0)
    assert [s.row.host for s in view.replicas] == ["y", "z"]
    assert [s.heartbeat_age_s for s in view.replicas] == [0.0, 0.0]


# --------------------------------------------------------------------------- both backends


async def insert_rows(db: AsyncEngine, rows: list[ReplicaRow]) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(replicas), [_values(r) for r in rows])


def _values(r: ReplicaRow) -> dict[str, Any]:
    return {name: getattr(r, name) for name in ReplicaRow.__dataclass_fields__}


async def db_clock(db: AsyncEngine) -> datetime:
    async with db.connect() as conn:
        return await database_now(conn)


async def test_replica_rows_on_both_backends(db_url: str) -> None:  # noqa: F811
    db = await open_database(db_url)
    try:
        assert await replica_rows(db) == []
        now = await db_clock(db)
        assert now.tzinfo is not None
        written = [
            row("a:11:x", age_s=0.5, leads_for_s=90, now=now, url="http://a:8000"),
            row("b:22:x", age_s=60, now=now),
        ]
        await insert_rows(db, written)
        got = sorted(await replica_rows(db), key=lambda r: r.replica_id)
        snapshot = await replica_snapshot(db)
    finally:
        await db.dispose()
    # SQLite keeps microseconds too: what was written is read back exactly
    assert got == written
    assert snapshot.now >= now
    view = replica_view(snapshot.rows, snapshot.now, 1.0)
    assert [(s.row.host, s.stale) for s in view.replicas] == [("a", False), ("b", True)]
    assert 0.5 <= view.replicas[0].heartbeat_age_s < 4.5
    assert view.leader is not None and view.leader.row.host == "a"


# --------------------------------------------------------------------------- /health


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'replicas.db'}")
    yield db
    await db.dispose()


async def health(state: ServiceState) -> tuple[int, dict[str, Any]]:
    async with client_for(state) as api:
        response = await api.get("/health")
    return response.status_code, response.json()


def state_of(db: AsyncEngine, **kwargs: Any) -> ServiceState:
    return ServiceState(db=db, metrics=Metrics(), coins=lambda: [], **kwargs)


async def test_health_of_a_single_process(sqlite_db: AsyncEngine) -> None:
    code, body = await health(state_of(sqlite_db))
    assert code == 200
    assert body["replication"] == {
        "mode": "single",
        "replica_id": None,
        "role": None,
        "leader": None,
        "stale_after_s": 5.0,
        "replicas": [],
    }


async def test_health_of_a_follower_names_the_leader(sqlite_db: AsyncEngine) -> None:
    now = await db_clock(sqlite_db)
    await insert_rows(
        sqlite_db,
        [
            row("crashed:1:x", age_s=120, leads_for_s=7200, now=now),
            row("lead:2:x", age_s=0.3, leads_for_s=45, now=now, url="http://lead:8000"),
            row("me:3:x", age_s=0.6, now=now),
        ],
    )
    leads: list[bool] = [False]
    state = state_of(
        sqlite_db, replica_id="me:3:x", is_leader=lambda: leads[0], leader_check_s=10.0
    )
    code, body = await health(state)
    assert code == 200 and body["status"] == "ok"  # a follower is healthy
    rep = body["replication"]
    assert (rep["mode"], rep["replica_id"], rep["role"]) == ("replicas", "me:3:x", "follower")
    assert rep["leader"]["replica_id"] == "lead:2:x" and rep["leader"]["host"] == "lead"
    assert _parse(rep["leader"]["since"]) == now - timedelta(seconds=45)
    by_id = {r["replica_id"]: r for r in rep["replicas"]}
    assert set(by_id) == {"crashed:1:x", "lead:2:x", "me:3:x"}
    assert by_id["crashed:1:x"]["stale"] and by_id["crashed:1:x"]["leader_since"] is not None
    assert not by_id["lead:2:x"]["stale"] and by_id["lead:2:x"]["http_url"] == "http://lead:8000"
    assert rep["stale_after_s"] == 32.0
    assert 0.6 <= by_id["me:3:x"]["heartbeat_age_s"] < 30
    assert set(by_id["me:3:x"]) == {
        "replica_id", "host", "pid", "http_url", "started_at", "heartbeat_at",
        "heartbeat_age_s", "leader_since", "stale",
    }  # fmt: skip
    leads[0] = True
    assert (await health(state))[1]["replication"]["role"] == "leader"


async def test_serve_shows_the_replicas_of_its_database(sqlite_db: AsyncEngine) -> None:
    """``coinharvest serve`` takes part in no election: mode follows the table."""
    now = await db_clock(sqlite_db)
    await insert_rows(sqlite_db, [row("gone:1:x", age_s=600, leads_for_s=900, now=now)])
    rep = (await health(state_of(sqlite_db)))[1]["replication"]
    assert rep["mode"] == "single" and rep["leader"] is None and rep["replicas"][0]["stale"]
    await insert_rows(sqlite_db, [row("live:2:x", age_s=0.2, now=now)])
    rep = (await health(state_of(sqlite_db)))[1]["replication"]
    assert rep["mode"] == "replicas" and rep["role"] is None and rep["leader"] is None


async def test_health_without_the_replicas_table_or_the_database(tmp_path: Path) -> None:
    """An old, unmigrated database has no replicas (still healthy); an unreachable one
    gives no rows but keeps this process's own view."""
    old = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    async with old.begin() as conn:
        await conn.execute(text("CREATE TABLE runs (x int)"))
    try:
        code, body = await health(state_of(old))
    finally:
        await old.dispose()
    assert body["replication"]["replicas"] == [] and body["replication"]["mode"] == "single"
    gone = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such.db'}")
    state = state_of(gone, replica_id="me:1:x", is_leader=lambda: True)
    code, body = await health(state)
    await gone.dispose()
    assert code == 503 and body["database"] == "unreachable"
    assert body["replication"]["role"] == "leader" and body["replication"]["replicas"] == []


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- /metrics


def leader_samples(m: Metrics) -> tuple[float, float]:
    parsed = samples(m.exposition().decode())
    leader = parsed[("coinharvest_leader", frozenset())]
    return leader, parsed[("coinharvest_takeovers_total", frozenset())]


def test_leader_metrics_by_mode() -> None:
    serve = Metrics()
    assert leader_samples(serve) == (0.0, 0.0)  # no scheduler: never leads
    single = Metrics(["sim"])
    engine = Engine({"sim": SimulatedSource("sim")})
    coin = Coin("AAA", "A", {"sim": "a"}, (("sim",),))
    single.watch(Scheduler(engine, lambda: [coin], interval_s=60))
    assert leader_samples(single) == (1.0, 0.0)  # alone on its database: its own leader
    replica = Metrics(["sim"])
    replica.leading(False)  # the election speaks before the scheduler is watched
    replica.watch(Scheduler(engine, lambda: [coin], interval_s=60))
    assert leader_samples(replica) == (0.0, 0.0)
    replica.leading(True)
    replica.took_over()
    assert leader_samples(replica) == (1.0, 1.0)
    replica.leading(False)
    replica.leading(True)
    replica.took_over()
    assert leader_samples(replica) == (1.0, 2.0)
    text_out = replica.exposition().decode()
    assert "# TYPE coinharvest_leader gauge" in text_out
    assert "# TYPE coinharvest_takeovers_total counter" in text_out


# --------------------------------------------------------------------------- dashboard

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def _browser_or_skip() -> Any:
    if not Path(CHROMIUM).exists():
        if os.environ.get("COINHARVEST_REQUIRE_BROWSER"):
            raise RuntimeError(f"COINHARVEST_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing")
    return pytest.importorskip("playwright.async_api", reason="pip install playwright")


async def test_dashboard_replicas_panel(sqlite_db: AsyncEngine, tmp_path: Path) -> None:
    playwright_api = _browser_or_skip()
    now = await db_clock(sqlite_db)
    await insert_rows(
        sqlite_db,
        [
            row("alpha:101:x", age_s=0.4, leads_for_s=1800, now=now, url="http://alpha:8000"),
            row("beta:202:x", age_s=0.9, now=now, url="javascript:alert(1)"),
            row("gamma:303:x", age_s=600, leads_for_s=86400, now=now),
        ],
    )
    found: dict[str, Any] = {}
    errors: list[str] = []
    shot = Path(os.environ.get("REPLICAS_SCREENSHOT") or tmp_path / "replicas.png")
    # checks every 10 s: stale after 32 s, slack for a slow browser start
    follower = state_of(
        sqlite_db, replica_id="beta:202:x", is_leader=lambda: False, leader_check_s=10.0
    )
    async with (
        http_server(create_app(follower), "127.0.0.1", 0) as url,
        playwright_api.async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url + "/")
        await page.wait_for_selector("#replicas tbody tr[data-replica]")
        found["note"] = await page.locator("#replicas-leader").inner_text()
        found["rows"] = await _rows(page)
        found["stale_after"] = await page.locator("#replicas-stale-after").inner_text()
        found["links"] = await page.locator("#replicas a").evaluate_all("l => l.map(a => a.href)")
        found["pill"] = await page.locator("#health .pill[data-role]").inner_text()
        await page.screenshot(path=str(shot), full_page=True)
        await page.set_viewport_size({"width": 390, "height": 844})
        found["scroll_width"] = await page.evaluate("document.documentElement.scrollWidth")
        found["phone_cells"] = await page.locator(
            '#replicas tr[data-replica="alpha:101:x"] td:visible'
        ).count()
        await page.screenshot(path=str(tmp_path / "replicas-phone.png"), full_page=True)
        await browser.close()
    assert found["note"].startswith("leader: alpha since "), found
    assert found["note"].endswith(" UTC"), found
    rows = found["rows"]
    # by start time (all alike here), then id
    assert [r["id"] for r in rows] == ["alpha:101:x", "beta:202:x", "gamma:303:x"]
    assert [r["role"] for r in rows] == ["leader", "follower", "stale"]
    assert "stale" in rows[2]["class"] and "self" in rows[1]["class"]
    assert rows[1]["name"] == "beta:202 (this)"
    assert all(r["age"].endswith(" s ago") or r["age"].endswith(" min ago") for r in rows), rows
    assert float(rows[0]["age"].split()[0]) < 30 and rows[2]["age"] == "10 min ago", rows
    assert found["stale_after"] == "32 s"
    assert found["links"] == ["http://alpha:8000/"]  # never a javascript: link
    assert found["pill"] == "this replica: follower"
    assert found["scroll_width"] <= 390, found
    assert found["phone_cells"] == 3  # replica, role, heartbeat
    assert not errors, errors
    assert shot.stat().st_size > 10_000


async def _rows(page: Any) -> list[dict[str, str]]:
    out = []
    for tr in await page.locator("#replicas tbody tr[data-replica]").all():
        cells = await tr.locator("td").all_text_contents()
        out.append(
            {
                "id": await tr.get_attribute("data-replica") or "",
                "class": await tr.get_attribute("class") or "",
                "name": cells[0],
                "role": cells[1],
                "age": cells[2],
            }
        )
    return out


async def test_dashboard_hides_the_panel_for_a_single_process(sqlite_db: AsyncEngine) -> None:
    playwright_api = _browser_or_skip()
    async with (
        http_server(create_app(state_of(sqlite_db)), "127.0.0.1", 0) as url,
        playwright_api.async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page()
        await page.goto(url + "/")
        await page.wait_for_selector("#health .pill")
        hidden = await page.locator("#replicas-section").is_hidden()
        roles = await page.locator("#health .pill[data-role]").count()
        await browser.close()
    assert hidden and roles == 0
