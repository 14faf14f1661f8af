"""``coinharvest run`` / ``serve`` as real processes against the emulator, SQLite in tmp.

Signals, the 2-second test interval, /metrics against what was stored, the API trigger.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from pathlib import Path
from typing import Any

import httpx

from coinharvest.emulator import RunningEmulator, run_emulator
from coinharvest.storage import Store, queries

from .conftest import (
    FAST_CLIENT,
    TOKEN,
    Filled,
    emulator_config,
    samples,
    service,
    service_env,
    total,
)

TWO_SECONDS = "0.0333333"  # COLLECTION_INTERVAL_MINUTES


async def stored(db: Path) -> tuple[list[queries.RunRow], list[queries.RunDetail]]:
    """Every run in `db`, oldest first, with its details (opens like a restarted service)."""
    async with await Store.from_url(f"sqlite+aiosqlite:///{db}") as store:
        runs = list(reversed(await queries.list_runs(store.engine, limit=100)))
        details = [await queries.run_detail(store.engine, r.run_id) for r in runs]
    return runs, [d for d in details if d is not None]


async def test_sigterm_mid_run_lets_in_flight_jobs_finish_and_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "sigterm.db"
    async with run_emulator(emulator_config(latency_ms=1500, jitter_ms=0)) as emu:
        client = {**FAST_CLIENT, "MAX_COLLECTION_CONCURRENCY": "2"}
        env = service_env(emu, db, **client, SHUTDOWN_GRACE_SECONDS="10")
        async with service(["run", "--no-http"], env, http=False) as svc:
            await svc.wait_for_line("Collecting ")  # the first jobs are in flight
            svc.signal(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            code = await svc.wait(timeout=15)
            took = loop.time() - t0
    assert code == 0, svc.log
    assert "stopping: no new jobs" in svc.log
    assert 1.0 < took < 10.0, f"in-flight 1.5 s requests should end within the grace: {took}"
    assert "HTTP API" not in svc.log  # --no-http
    runs, details = await stored(db)
    assert len(runs) == 1
    run, detail = runs[0], details[0]
    assert run.status == "interrupted" and run.finished_at is not None
    started = [j for j in detail.jobs if j.started_s is not None]
    assert 1 <= len(started) <= 2, "nothing may start after the signal"
    assert all(j.ended_s is not None and j.status == "ok" for j in started), started
    assert any(j.status == "deferred" for j in detail.jobs)
    assert sum(c.observation_count for c in detail.coins) > 0, "finished jobs were stored"


async def test_a_second_signal_cuts_the_run_at_once_and_still_marks_it(tmp_path: Path) -> None:
    db = tmp_path / "twice.db"
    async with run_emulator(emulator_config(latency_ms=20_000, jitter_ms=0)) as emu:
        env = service_env(emu, db, SHUTDOWN_GRACE_SECONDS="30", HTTP_TIMEOUT_SECONDS="60")
        async with service(["run", "--no-http"], env, http=False) as svc:
            await svc.wait_for_line("Collecting ")
            svc.signal(signal.SIGTERM)
            await svc.wait_for_line("stopping: no new jobs")
            svc.signal(signal.SIGINT)
            code = await svc.wait(timeout=10)
    assert code == 0, svc.log
    assert "cancelling the run now" in svc.log
    runs, _ = await stored(db)
    assert [r.status for r in runs] == ["interrupted"]


async def test_a_run_longer_than_the_interval_skips_ticks_never_overlaps(
    tmp_path: Path,
) -> None:
    db = tmp_path / "overrun.db"
    async with run_emulator(emulator_config(latency_ms=2600, jitter_ms=0)) as emu:
        env = service_env(
            emu,
            db,
            COLLECTION_INTERVAL_MINUTES=TWO_SECONDS,
            RUN_TIMEOUT_MINUTES="0.2",
        )
        async with service(["run"], env) as svc:
            await svc.wait_for_line("Processing 11 coins")
            await asyncio.sleep(7.5)
            async with httpx.AsyncClient(base_url=svc.url or "", timeout=5) as http:
                parsed = samples((await http.get("/metrics")).text)
            svc.signal(signal.SIGTERM)
            assert await svc.wait(timeout=20) == 0, svc.log
    ticks = total(parsed, "coinharvest_scheduler_ticks_total")
    skipped = total(parsed, "coinharvest_skipped_ticks_total")
    finished = total(parsed, "coinharvest_runs_total")
    running = total(parsed, "coinharvest_run_in_progress")
    assert skipped >= 2, svc.log
    assert ticks == finished + running + skipped  # every tick ran or was counted as skipped
    assert "previous collection still running; tick skipped" in svc.log
    runs, _ = await stored(db)
    assert len(runs) >= 2
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None and before.finished_at <= after.started_at
    assert all(r.status != "running" for r in runs)


async def test_metrics_match_the_stored_runs_and_the_api_starts_runs(
    tmp_path: Path, emu_fast: RunningEmulator
) -> None:
    db = tmp_path / "metrics.db"
    await emu_fast.set_upstream("3xpl", faults={"error_503": 0.2})
    env = service_env(emu_fast, db, **FAST_CLIENT, COINHARVEST_API_TOKEN=TOKEN)
    async with service(["run"], env) as svc:
        async with httpx.AsyncClient(base_url=svc.url or "", timeout=10) as http:
            first = await _wait_finished(http)
            await _assert_metrics_match(http, [first])

            denied = await http.post("/api/runs", headers={"Authorization": "Bearer nope"})
            assert denied.status_code == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            started = await http.post("/api/runs", headers=auth)
            assert started.status_code == 202, started.text
            busy = await http.post("/api/runs", headers=auth)
            assert busy.status_code == 409 and busy.json()["status"] == 409
            second = await _wait_finished(http, started.json()["run_id"])
            assert second["trigger"] == "api"
            await _assert_metrics_match(http, [first, second])
            health = (await http.get("/health")).json()
            assert health["status"] == "ok" and health["scheduler"] == "idle"
            assert set(health["sources"].values()) == {"closed"}, health
        svc.signal(signal.SIGTERM)
        assert await svc.wait(timeout=20) == 0, svc.log


async def _wait_finished(http: httpx.AsyncClient, run_id: str | None = None) -> dict[str, Any]:
    for _ in range(300):
        runs = (await http.get("/api/runs")).json()["runs"]
        match = [r for r in runs if run_id in (None, r["run_id"]) and r["finished_at"]]
        if match:
            return dict(match[0])
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish")


async def _assert_metrics_match(http: httpx.AsyncClient, runs: list[dict[str, Any]]) -> None:
    parsed = samples((await http.get("/metrics")).text)

    def added(key: str) -> float:
        return sum(float(r[key]) for r in runs)

    assert total(parsed, "coinharvest_requests_total") == added("requests")
    rate_limited = total(parsed, "coinharvest_requests_total", outcome="rate_limited")
    assert rate_limited == added("rate_limited")
    assert total(parsed, "coinharvest_retries_total") == added("retries")
    assert total(parsed, "coinharvest_coins_total", status="ok") == added("coins_ok")
    assert total(parsed, "coinharvest_coins_total", status="failed") == added("coins_failed")
    assert total(parsed, "coinharvest_run_duration_seconds_count") == len(runs)
    for status in {str(r["status"]) for r in runs}:
        expected = sum(1 for r in runs if r["status"] == status)
        assert total(parsed, "coinharvest_runs_total", status=status) == expected
    assert total(parsed, "coinharvest_jobs_in_flight") == 0


async def test_serve_answers_over_an_existing_database(filled: Filled, tmp_path: Path) -> None:
    env = service_env(None, filled.path)
    async with service(["serve"], env) as svc:
        async with httpx.AsyncClient(base_url=svc.url or "", timeout=10) as http:
            health = await http.get("/health")
            runs = (await http.get("/api/runs")).json()["runs"]
            post = await http.post("/api/runs")
            head = await http.head("/")
            rebound = await http.get("/api/runs", headers={"Host": "rebind.example:8000"})
        svc.signal(signal.SIGINT)
        assert await svc.wait(timeout=15) == 0, svc.log
    assert health.status_code == 200
    assert health.json()["scheduler"] == "not running"
    assert len(runs) == len(filled.summaries)
    assert post.status_code == 405
    assert head.status_code == 200 and head.content == b""
    assert head.headers["x-frame-options"] == "DENY"
    # bound to 127.0.0.1: a DNS-rebinding name is refused
    assert rebound.status_code == 400 and "untrusted Host" in rebound.json()["error"]
