"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright).

Over a database filled by real runs against the emulator, served by the real app on a
loopback port (with its Content-Security-Policy): the page shows every coin, the runs, a job
timeline, an open circuit breaker and the sources' limits and quotas (a live engine with a
learned limit and a quota in use), and logs no console error (a CSP violation is one).
Also: integers shown exactly (a block height with thousands separators), times labelled UTC,
the history's range picker asking for that range only (``since``, ``max_points``), a run row
opened from the keyboard; and over runs with 429s and failures (a simulated source through
the real engine and store): the timeline's marks, a 390 px phone viewport without sideways
page scrolling, and the data greyed out as stale while the API cannot be reached.
The screenshot goes to ``$DASHBOARD_SCREENSHOT`` (``docs/dashboard.png`` refreshes the
README's picture) or else into the test's temp dir; the phone one to
``$DASHBOARD_PHONE_SCREENSHOT`` or the temp dir.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from enginekit import coin

from coinharvest.coins import load_coins
from coinharvest.engine import Engine
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import LearnedLimit, SourceLimits
from coinharvest.service.api import ServiceState, create_app
from coinharvest.service.app import http_server
from coinharvest.service.limits import LimitsDesk
from coinharvest.service.metrics import Metrics
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.storage import Store, open_database, queries

from .conftest import Filled

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not Path(CHROMIUM).exists():
    if os.environ.get("COINHARVEST_REQUIRE_BROWSER"):  # CI sets it: a skip would hide a gap
        raise RuntimeError(f"COINHARVEST_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
    pytest.skip(
        f"{CHROMIUM} is missing: apt-get install -y chromium (CI installs it)",
        allow_module_level=True,
    )


async def test_dashboard_shows_coins_runs_and_a_timeline(filled: Filled, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright")
    coins = load_coins()
    db = await open_database(filled.url)
    errors: list[str] = []
    shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
    try:
        metrics = Metrics(["coingecko", "3xpl"])
        metrics.circuit_changed("3xpl", "open")
        desk = LimitsDesk(db, LIMITS, {}, adaptive=True, engine=limits_engine())
        state = ServiceState(db=db, metrics=metrics, coins=lambda: coins, limits=desk)
        server = http_server(create_app(state), "127.0.0.1", 0)
        async with server as url, playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            history_requests: list[str] = []
            page.on(
                "request",
                lambda r: history_requests.append(r.url) if "/api/history/" in r.url else None,
            )
            response = await page.goto(url + "/")
            assert response is not None
            csp = await response.header_value("content-security-policy")
            await page.wait_for_selector("#coins .card .price")
            await page.wait_for_selector("#timeline svg g.job rect.bar")
            await page.wait_for_selector("#history svg path.line", state="attached")
            cards = await page.locator("#coins .card").count()
            rows = await page.locator("#runs tbody tr[data-run]").count()
            lanes = await page.locator("#timeline svg text.lane-label").all_text_contents()
            jobs = await page.locator("#timeline svg g.job").count()
            title = await page.locator("#timeline-title").inner_text()
            circuits = await page.locator("#health .pill[data-source]").all_text_contents()
            await page.wait_for_selector("#limits tbody tr[data-source] meter")
            limit_rows = {
                (await row.get_attribute("data-source")): await row.locator(
                    "td"
                ).all_text_contents()
                for row in await page.locator("#limits tbody tr[data-source]").all()
            }
            # choose another run: its timeline replaces the first
            other = filled.summaries[0].run_id
            await page.locator(f'#runs tr[data-run="{other}"]').click()
            # a locator, not wait_for_function: the page's CSP forbids evaluating strings
            await page.locator("#timeline-title", has_text=other).wait_for()
            # the keyboard opens a run too: focus its row, press Enter
            second = filled.summaries[1].run_id
            await page.locator(f'#runs tr[data-run="{second}"]').focus()
            await page.keyboard.press("Enter")
            await page.locator("#timeline-title", has_text=second).wait_for()
            # exact integers: a block height with thousands separators, never "2.4M"
            heights = {
                v.symbol: v.value
                for v in await queries.latest_values(db)
                if v.metric == "block_height" and v.value is not None
            }
            symbol, height = max(heights.items(), key=lambda kv: kv[1])
            shown_height = await page.locator(
                f'#coins .card[data-symbol="{symbol}"] tr[data-metric="block_height"] td.v'
            ).inner_text()
            price_text = await page.locator('#coins .card[data-symbol="BTC"] .price').inner_text()
            utc_texts = [
                await page.locator("#runs thead").inner_text(),
                await page.locator("#history svg text.axis-title").text_content() or "",
                await page.locator("#timeline-title").inner_text(),
            ]
            # the history asks for its visible range, one point per pixel at most
            first_history = history_requests[0]
            async with page.expect_request(lambda r: "/api/history/" in r.url) as asked:
                await page.locator('#hist-range button[data-range="7d"]').click()
            seven_days = (await asked.value).url
            async with page.expect_request(lambda r: "/api/history/" in r.url) as asked:
                await page.locator('#hist-range button[data-range="all"]').click()
            everything = (await asked.value).url
            await page.locator('#hist-range button[data-range="24h"]').click()
            await page.wait_for_selector("#history svg path.line", state="attached")
            # the picture: the run with the most retries shows the most colours
            busiest = max(filled.summaries[1:], key=lambda s: (s.retries, s.duration_s))
            await page.locator(f'#runs tr[data-run="{busiest.run_id}"]').click()
            # a locator, not wait_for_function: the page's CSP forbids evaluating strings
            await page.locator("#timeline-title", has_text=busiest.run_id).wait_for()
            shot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shot), full_page=True)
            await browser.close()
    finally:
        await db.dispose()
    assert cards == len(coins)
    assert rows == len(filled.summaries)
    newest = filled.summaries[-1]
    assert newest.run_id in title
    assert set(lanes) == {j.source for j in newest.jobs}
    assert jobs == len(newest.jobs)
    assert csp is not None and "default-src 'self'" in csp
    assert circuits == ["3xpl: unreachable (circuit open)"]
    assert set(limit_rows) == set(LIMITS)
    name, in_flight, per_minute, refused, today, month = limit_rows["coingecko"]
    assert name == "coingecko"
    assert (in_flight, per_minute, refused) == ("2 / 4", "10 / 30", "12")
    assert today.startswith("7 / ") and month == "40 / 10,000"
    assert limit_rows["nano"][1:4] == ["2 / 2", "unlimited", "–"]
    assert not errors, errors
    assert shot.stat().st_size > 10_000
    assert height >= 1000 and shown_height == f"{round(height):,}", (symbol, height, shown_height)
    assert re.fullmatch(r"\$\d{1,3}(,\d{3})*\.\d\d", price_text), price_text
    assert all("UTC" in text for text in utc_texts), utc_texts
    assert "since=24h" in first_history and "max_points=" in first_history, first_history
    assert "since=7d" in seven_days and "max_points=" in seven_days, seven_days
    assert "since=" not in everything and "max_points=" in everything, everything


LIMITS = {
    "coingecko": SourceLimits(4, 0.0, 30, quota_per_month=10_000),
    "3xpl": SourceLimits(3, 0.0, 30),
    "nano": SourceLimits(2),
}


def limits_engine() -> Engine:
    """An engine whose coingecko learned 2 in flight and 10/min (refused at 12/min) and has
    sent 7 requests today, 40 this month."""
    sources = {name: SimulatedSource(name) for name in LIMITS}
    engine = Engine(sources, limits=LIMITS, adaptive=True)
    row = LearnedLimit("coingecko", "", 2.0, 10.0, 12.0, datetime.now(UTC))
    engine.adaptations["coingecko"].restore(row, 60.0, 0.0)
    quota = engine.limiters["coingecko"].quota
    assert quota is not None
    quota.seed(7, 40)
    return engine


def test_chromium_is_what_ci_installs() -> None:
    """Guard: Playwright must use Debian's Chromium, never a downloaded browser build."""
    assert shutil.which("chromium") == CHROMIUM


# --------------------------------------------------------------------------- 429s, phone, staleness


async def _rate_limited_runs(url: str) -> list[str]:
    """Three runs of 12 coins on one source answering 429 (and 500) now and then, stored by
    the real engine: their jobs have ``rate_limited`` and ``failed`` attempts."""
    coins = [coin(f"C{i:02d}", "coingecko") for i in range(12)]
    ids = []
    async with await Store.from_url(url) as store:
        for seed in range(3):
            source = SimulatedSource(
                "coingecko",
                default_latency=0.02,
                rate_limit_rate=0.3,
                failure_rate=0.15,
                retry_after=0.02,
                seed=seed,
            )
            retry = RetryPolicy(base_s=0.01, cap_s=0.02, max_attempts=2, rng=random.Random(seed))
            engine = Engine({"coingecko": source}, max_concurrency=3, retry=retry, sink=store)
            ids.append((await engine.run(coins, trigger="schedule")).run_id)
    return ids


async def test_rate_limits_on_the_timeline_a_phone_and_a_lost_api(tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="pip install playwright")
    url = f"sqlite+aiosqlite:///{tmp_path / 'limited.db'}"
    run_ids = await _rate_limited_runs(url)
    coins = [coin(f"C{i:02d}", "coingecko") for i in range(12)]
    db = await open_database(url)
    errors: list[str] = []
    phone_shot = Path(os.environ.get("DASHBOARD_PHONE_SCREENSHOT") or tmp_path / "phone.png")
    found: dict[str, Any] = {}
    try:
        details = [await queries.run_detail(db, run_id) for run_id in run_ids]
        busiest = max(
            (d for d in details if d is not None),
            key=lambda d: sum(j.status == "rate_limited" for j in d.jobs),
        )
        limited = sum(j.status == "rate_limited" for j in busiest.jobs)
        state = ServiceState(db=db, metrics=Metrics(["coingecko"]), coins=lambda: coins)
        server = http_server(create_app(state), "127.0.0.1", 0)
        async with server as base, playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(base + "/?refresh=1")
            await page.wait_for_selector("#coins .card .price")
            row = page.locator(f'#runs tr[data-run="{busiest.run.run_id}"]')
            await row.focus()
            await page.keyboard.press(" ")
            await page.locator("#timeline-title", has_text=busiest.run.run_id).wait_for()
            await page.wait_for_selector("#timeline svg path.mark.rate_limited")
            marks = page.locator("#timeline svg path.mark.rate_limited")
            found["marks"] = await marks.count()
            found["mark_box"] = await marks.first.bounding_box()
            found["legend"] = await page.locator("[data-testid=timeline-legend]").inner_text()
            found["scroll_width"] = await page.evaluate("document.documentElement.scrollWidth")
            found["durations"] = await page.evaluate(
                "[59.6, 119.6, 7199, 172700].map(fmtSeconds)"
            )  # rounded to the unit first (review: "1 min 60 s", "1 h 60 min", "1 d 24 h")
            await page.screenshot(path=str(phone_shot), full_page=True)
            # the API goes away: the data greys out and says how old it is; then it is back
            fail = lambda route: route.abort()  # noqa: E731
            await page.route(re.compile(r"/(api/|health)"), fail)
            await page.wait_for_selector("body.stale", timeout=10_000)
            found["stale"] = await page.locator("#freshness").inner_text()
            stale_shot = os.environ.get("DASHBOARD_STALE_SCREENSHOT")
            await page.screenshot(path=stale_shot or str(tmp_path / "stale.png"))
            await page.unroute(re.compile(r"/(api/|health)"), fail)
            await page.wait_for_selector("body:not(.stale)", timeout=10_000)
            found["fresh"] = await page.locator("#freshness").inner_text()
            # an API without ?max_points= (422): the chart asks again by its range alone
            refused: list[str] = []

            async def no_max_points(route: Any) -> None:
                if "max_points=" in route.request.url:
                    refused.append(route.request.url)
                    await route.fulfill(status=422, json={"error": "max_points", "status": 422})
                else:
                    await route.continue_()

            await page.route(re.compile(r"/api/history/"), no_max_points)
            async with page.expect_request(
                lambda r: "/api/history/" in r.url and "max_points=" not in r.url
            ) as asked:
                await page.locator('#hist-range button[data-range="1h"]').click()
            found["fallback"] = (await asked.value).url
            found["refused"] = refused
            await page.wait_for_selector("#history svg path.line", state="attached")
            await browser.close()
    finally:
        await db.dispose()
    assert limited > 0 and found["marks"] == limited
    assert found["mark_box"] is not None and found["mark_box"]["width"] >= 6, found["mark_box"]
    assert "429" in found["legend"] and "failed" in found["legend"]
    assert found["scroll_width"] <= 390, found["scroll_width"]
    assert found["durations"] == ["1 min", "2 min", "2 h", "2 d"]
    assert re.fullmatch(r"API unreachable · last update \d+ s ago", found["stale"]), found
    assert found["fresh"].startswith("updated "), found
    assert len(found["refused"]) == 1 and "since=1h" in found["fallback"], found
    errors = [e for e in errors if "ERR_FAILED" not in e and "Failed to load" not in e]
    assert not errors, errors
