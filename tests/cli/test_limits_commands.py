"""``coinharvest sources`` (its second table), ``limits show`` and ``limits reset`` as a user
runs them: subprocesses over a SQLite file in the test's directory.

Learned limits are saved ten minutes ago and requests a second ago (never before today's UTC
midnight), so nothing here depends on the date.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from coinharvest.engine.adaptive import key_id
from coinharvest.engine.quota import day_start
from coinharvest.models import JobRecord, JobStatus, LearnedLimit, RunStatus, RunSummary
from coinharvest.storage import Store

#: Limits that make the learned values easy to read: coingecko 4 in flight, 30 a minute
#: (no spacing), with a key and a monthly quota.
ENV = {
    "MAX_COINGECKO_CONCURRENCY": "4",
    "COINGECKO_MIN_INTERVAL_MS": "0",
    "COINGECKO_RATE_LIMIT_PER_MINUTE": "30",
    "COINGECKO_API_KEY": "sekrit-key",
    "COINGECKO_QUOTA_PER_MONTH": "10000",
}


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    full = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "COINS_FILE", "DATABASE_URL", "COINHARVEST_DB"}
        and not k.startswith(("COINGECKO_", "NEARBLOCKS_", "MAX_", "ADAPTIVE_", "COLLECTION_"))
    }
    full.update(env or {})
    full["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "coinharvest", *args],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def rows(stdout: str, title: str = "Adaptive limits and quotas") -> dict[str, list[str]]:
    """The cells of each row of the table under `title`, by source."""
    lines = stdout[stdout.index(title) :].splitlines()
    found = {}
    for line in lines:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            found[cells[0]] = cells[1:]
    return found


async def _seed(db: Path, learned: list[LearnedLimit], requests: dict[str, int]) -> None:
    async with await Store.from_url(f"sqlite+aiosqlite:///{db}") as store:
        await store.save_learned_limits(learned)
        now = datetime.now(UTC)
        at = max(day_start(now), now - timedelta(seconds=1))
        jobs = [
            JobRecord(i, source, ("A",), 1, 0.0, 0.001 * i, 0.001 * i + 0.1, JobStatus.OK)
            for i, source in enumerate(s for s, n in requests.items() for _ in range(n))
        ]
        await store.run_started("seeded", "manual", at, [])
        await store.jobs_recorded("seeded", jobs)
        summary = RunSummary(
            "seeded", "manual", RunStatus.COMPLETED, at, 1.0, 0, 0, 0, 0,
            requests=len(jobs), rate_limited=0, retries=0, max_in_flight=1, jobs=jobs,
        )  # fmt: skip
        await store.run_finished(summary)


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    """coingecko learned 2 in flight and 10/min, refused at 12/min (for the configured key;
    another key's limit is ignored); nano learned 1 in flight; 3 coingecko and 2 nearblocks
    requests sent today."""
    ago = datetime.now(UTC) - timedelta(minutes=10)
    key = key_id(ENV["COINGECKO_API_KEY"])
    learned = [
        LearnedLimit("coingecko", key, 2.0, 10.0, 12.0, ago),
        LearnedLimit("coingecko", key_id("old-key"), 1.0, 3.0, 4.0, ago),
        LearnedLimit("nano", "", 1.0, 0.0, None, ago),
    ]
    asyncio.run(_seed(tmp_path / "coinharvest.db", learned, {"coingecko": 3, "nearblocks": 2}))
    return tmp_path


def test_sources_shows_learned_limits_and_quota_use(seeded: Path) -> None:
    before = day_start(datetime.now(UTC))
    result = run_cli("sources", cwd=seeded, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "Sources (effective settings)" in result.stdout  # the first table is still there
    assert "sekrit" not in result.stdout + result.stderr
    table = rows(result.stdout)
    assert set(table) == {"coingecko", "3xpl", "blockchair", "nearblocks", "nano"}
    cg = table["coingecko"]
    assert cg[:3] == ["2 / 4", "10 / 30", "12"]  # learned / ceiling, refused at
    sent = 3 if day_start(datetime.now(UTC)) == before else 0  # midnight passed: a new day
    assert cg[3].startswith(f"{sent} / ") and cg[4] == "3 / 10,000"
    nb = table["nearblocks"]
    assert nb[3] == f"{2 if sent else 0} / 333"  # NearBlocks' default daily quota
    assert nb[4] == "2"  # counted this month, no monthly quota of its own
    assert table["3xpl"][:3] == ["1 / 1", "30 / 30", "–"]
    out = " ".join(result.stdout.split())
    assert "learned: coingecko 10m ago, nano 10m ago" in out
    assert "not learned yet (starts at the ceiling): 3xpl, blockchair, nearblocks" in out
    assert "quota plan: 1 coingecko requests × 24 runs × 30 days = 720 of 10,000/month" in out
    assert "quota plan: 1 nearblocks requests × 24 runs = 24 of 333/day" in out
    assert "exceeds" not in out


def test_a_schedule_over_a_quota_is_flagged(seeded: Path) -> None:
    result = run_cli("limits", "show", cwd=seeded, env={**ENV, "COLLECTION_INTERVAL_MINUTES": "1"})
    assert result.returncode == 0, result.stderr
    assert "Sources (effective settings)" not in result.stdout  # only the second table
    out = " ".join(result.stdout.split())
    assert (
        "quota plan: 1 nearblocks requests × 1,440 runs = 1,440 of 333/day: exceeds; "
        "nearblocks's jobs will be deferred when the quota is spent"
    ) in out
    assert "of 10,000/month: exceeds" in out


def test_adaptive_limits_off_uses_the_ceilings(seeded: Path) -> None:
    result = run_cli("limits", "show", cwd=seeded, env={**ENV, "ADAPTIVE_LIMITS": "off"})
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout)["coingecko"][:3] == ["4 / 4", "30 / 30", "–"]
    out = " ".join(result.stdout.split())
    assert "ADAPTIVE_LIMITS=off: the configured limits apply as they are" in out
    assert "(3 stored, unused)" in out


def test_without_a_database_nothing_is_created_and_80_columns_fit(tmp_path: Path) -> None:
    result = run_cli("sources", cwd=tmp_path, env=ENV, columns=80)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "coinharvest.db").exists()
    second = result.stdout[result.stdout.index("Adaptive limits and quotas") :]
    assert max(len(line) for line in second.splitlines()) <= 80
    assert "…" not in second  # nothing cut
    table = rows(result.stdout)
    cg = table["coingecko"]
    assert cg[:3] == ["4 / 4", "30 / 30", "–"]  # nothing learned: the ceilings
    assert cg[3].startswith("– / ") and cg[4] == "– / 10,000"  # counts unknown
    assert table["nearblocks"][3:] == ["– / 333", "–"]
    out = " ".join(second.split())
    # Without spaces: a long pytest path is folded across lines (pytest-255 did, pytest-3 not).
    path = tmp_path / "coinharvest.db"
    assert f"Nodatabaseat{path}yet(notcreated)" in "".join(second.split())
    assert "quota use unknown (–)" in out


def test_reset_forgets_one_source_or_all(seeded: Path) -> None:
    one = run_cli("limits", "reset", "coingecko", cwd=seeded, env=ENV)
    assert one.returncode == 0, one.stderr
    assert "forgot 2 learned limits of coingecko" in one.stdout  # under every key
    shown = run_cli("limits", "show", cwd=seeded, env=ENV)
    assert rows(shown.stdout)["coingecko"][:3] == ["4 / 4", "30 / 30", "–"]
    assert "(starts at the ceiling): coingecko," in " ".join(shown.stdout.split())
    every = run_cli("limits", "reset", "--all", cwd=seeded, env=ENV)
    assert every.returncode == 0, every.stderr
    assert "forgot 1 learned limit of every source" in every.stdout
    assert "restart it, or reset through its API" in " ".join(every.stdout.split())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("nope",), "error: unknown source 'nope' (known: coingecko, 3xpl,"),
        ((), "error: give a SOURCE or --all (exactly one)"),
        (("coingecko", "--all"), "error: give a SOURCE or --all (exactly one)"),
    ],
)
def test_reset_usage_errors_are_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    result = run_cli("limits", "reset", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(says), result.stderr
    assert not (tmp_path / "coinharvest.db").exists()


def test_reset_without_a_database_creates_none(tmp_path: Path) -> None:
    result = run_cli("limits", "reset", "--all", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "nothing to forget: no database at" in result.stdout
    assert not (tmp_path / "coinharvest.db").exists()
