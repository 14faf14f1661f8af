"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright).

Over a database filled by real runs against the emulator, served by the real app on a
loopback port (with its Content-Security-Policy): the page shows every coin, the runs, a job
timeline, an open circuit breaker and the sources' limits and quotas (a live engine with a
learned limit and a quota in use), and logs no console error (a CSP violation is one).
The screenshot goes to ``$DASHBOARD_SCREENSHOT`` (``docs/dashboard.png`` refreshes the
README's picture) or else into the test's temp dir.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coinharvest.coins import load_coins
from coinharvest.engine import Engine
from coinharvest.models import LearnedLimit, SourceLimits
from coinharvest.service.api import ServiceState, create_app
from coinharvest.service.app import http_server
from coinharvest.service.limits import LimitsDesk
from coinharvest.service.metrics import Metrics
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.storage import open_database

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
