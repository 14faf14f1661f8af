"""deploy/grafana and deploy/prometheus only query metrics the service really exposes.

A real ``coinharvest run`` (subprocess, emulator on loopback, SQLite in tmp) is scraped after
its first run; every metric name in the dashboard's queries and the alert rules must be
queryable against that scrape (`queryable_names`: a counter as ``_total``, a histogram as
``_bucket``/``_sum``/``_count``), apart from the series Prometheus adds itself (``up``).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from service.conftest import FAST_CLIENT, Service, emulator_config, service, service_env

from coinharvest.emulator import run_emulator

from .promql import metric_names, queryable_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "coinharvest.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
#: Series Prometheus makes itself, not the target.
SYNTHETIC = {"up"}


def dashboard_queries() -> list[str]:
    """Every PromQL query of the dashboard: panel targets and template variables."""
    board = json.loads(DASHBOARD.read_text())
    found = [t["expr"] for p in _panels(board["panels"]) for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of deploy/prometheus/alerts.yml."""
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics of a real ``coinharvest run`` after its first run has finished."""
    db = tmp_path_factory.mktemp("monitoring") / "monitoring.db"
    return asyncio.run(_scrape_after_a_run(db))


async def _scrape_after_a_run(db: Path) -> str:
    async with (
        run_emulator(emulator_config(latency_ms=20, jitter_ms=10)) as emu,
        service(["run"], service_env(emu, db, **FAST_CLIENT)) as svc,
    ):
        async with httpx.AsyncClient(base_url=svc.url or "", timeout=10) as http:
            text = await _first_finished_run(http, svc)
        svc.signal(signal.SIGTERM)
        assert await svc.wait(timeout=20) == 0, svc.log
    return text


async def _first_finished_run(http: httpx.AsyncClient, svc: Service) -> str:
    """/metrics once ``runs_total`` counts one run that collected coins."""
    for _ in range(600):
        text = (await http.get("/metrics")).text
        if any(
            f'coinharvest_runs_total{{status="{s}"}} 1.0' in text for s in ("completed", "partial")
        ):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"no finished run; log:\n{svc.log}")


def test_the_dashboard_queries_only_exposed_metrics(scraped: str) -> None:
    exposed = queryable_names(scraped) | SYNTHETIC
    queries = dashboard_queries()
    assert len(queries) > 20
    missing = {q: metric_names(q) - exposed for q in queries if metric_names(q) - exposed}
    assert not missing, missing
    assert all(metric_names(q) for q in queries), "a query without a metric"


def test_the_alert_rules_query_only_exposed_metrics(scraped: str) -> None:
    exposed = queryable_names(scraped) | SYNTHETIC
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "CoinharvestDown",
        "CoinharvestNoSuccessfulRun",
        "CoinharvestSourceRateLimited",
        "CoinharvestCoinStale",
        "CoinharvestNoLeader",
        "CoinharvestFrequentTakeovers",
    }
    for rule in rules:
        assert metric_names(rule["expr"]) <= exposed, (rule["alert"], rule["expr"])
        assert rule["annotations"]["summary"] and rule["labels"]["severity"]


def test_the_scrape_has_the_series_the_alerts_need_with_values(scraped: str) -> None:
    """The alerts' arithmetic needs these as samples (not just declared families)."""
    for needed in (
        "coinharvest_last_successful_run_timestamp_seconds",
        "coinharvest_collection_interval_seconds",
        "coinharvest_coin_last_success_timestamp_seconds{symbol=",
        "process_start_time_seconds",
        'coinharvest_build_info{version="',
        'coinharvest_requests_total{code="200",outcome="ok",source="coingecko"}',
        "coinharvest_leader 1.0",  # alone on SQLite: its own leader (no NoLeader alert)
        "coinharvest_takeovers_total 0.0",
    ):
        assert f"\n{needed}" in scraped, needed


def test_names_are_read_from_promql_as_prometheus_would() -> None:
    expr = (
        'sum by (source, le) (rate(a_bucket{x="y(z)"}[5m] offset 1h)) / on (job) group_left '
        "b_total > bool 3 and absent(up) or label_values(c_info, instance) unless $__range"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "up", "c_info"}
    text = (
        "# HELP h_seconds h\n# TYPE h_seconds histogram\n"
        "# HELP c c\n# TYPE c counter\n# HELP g g\n# TYPE g gauge\n"
    )
    names = queryable_names(text)
    assert {"h_seconds_bucket", "h_seconds_sum", "h_seconds_count", "c_total", "g"} <= names
    assert "h_seconds" not in names and "c" not in names


def test_every_query_is_valid_promql() -> None:
    """Parsed by a real PromQL parser (promql-parser: the Rust port of Prometheus's parser),
    since promtool is not installed here. Grafana's variables are substituted first."""
    import promql_parser  # a test dependency (pyproject)

    grafana = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}
    for query in [*dashboard_queries(), *(rule["expr"] for rule in alert_rules())]:
        # Grafana's label_values(selector, label) is not PromQL: its selector is.
        text = re.sub(r"^label_values\((.*?)(,\s*\w+)?\)$", r"\1", query.strip())
        for variable, value in grafana.items():
            text = text.replace(variable, value)
        text = re.sub(r"\$\{?(\w+)(:\w+)?\}?", "x", text)  # template variables: a label value
        promql_parser.parse(text)
