"""`OpenRun`'s index of pending job attempts by coin: a coin finds exactly the pending
attempts naming it, each once, whatever order they were recorded and written in."""

from __future__ import annotations

from datetime import UTC, datetime

from coinharvest.models import JobRecord, JobStatus
from coinharvest.storage.group_commit import OpenRun
from coinharvest.storage.writes import RunStart


def _job(job_id: int, symbols: tuple[str, ...], attempt: int = 1) -> JobRecord:
    return JobRecord(job_id, "coingecko", symbols, attempt, 0.0, 0.1, None, JobStatus.OK)


def test_a_coin_finds_the_pending_jobs_naming_it_each_once() -> None:
    run = OpenRun(RunStart("r", "manual", datetime.now(UTC), 3, "test"))
    batch, chain, retry = _job(1, ("A", "B", "C")), _job(2, ("B",)), _job(1, ("A", "B", "C"), 2)
    run.add_jobs([batch, chain])
    run.add_jobs([batch, retry])  # recorded again (changed): indexed once
    assert run.jobs_of("B") == [batch, chain, retry]
    assert run.jobs_of("C") == [batch, retry]
    assert run.jobs_of("Z") == []
    del run.pending_jobs[(1, 1)]  # written with another coin
    assert run.jobs_of("C") == [retry]
    run.add_jobs([batch])  # recorded again after it was written: pending again
    assert run.jobs_of("C") == [batch, retry]
