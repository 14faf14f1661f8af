"""Learned limits kept across runs, on SQLite and on a real PostgreSQL: round trip, upsert
by (source, key_id), reset of one source or all, retries, and the read-only reader."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coinharvest.errors import StoreError
from coinharvest.models import LearnedLimit
from coinharvest.storage import Store
from coinharvest.storage.limits import learned_limits

from .faults import FaultInjector

#: Relative to now, with microseconds, so they must come back to the microsecond.
NOW = datetime.now(UTC) - timedelta(minutes=5)


def limit(
    source: str,
    key_id: str = "",
    *,
    rate: float = 30.0,
    ceiling: float | None = None,
    at: datetime = NOW,
) -> LearnedLimit:
    return LearnedLimit(source, key_id, 2.5, rate, ceiling, at)


async def test_learned_limits_come_back_as_saved(store: Store) -> None:
    assert await store.load_learned_limits() == []
    saved = [
        limit("coingecko", "k-1f2e", rate=27.5, ceiling=30.0),
        limit("blockchair"),  # keyless, never refused: no ceiling
        limit("coingecko", "", rate=9.75, at=NOW - timedelta(days=3)),
    ]
    await store.save_learned_limits(saved)
    loaded = await store.load_learned_limits()
    assert loaded == sorted(saved, key=lambda lim: (lim.source, lim.key_id))
    assert all(lim.updated_at.tzinfo is UTC for lim in loaded)
    # Read-only commands read the same rows without a store.
    assert await learned_limits(store.engine) == loaded


async def test_saving_again_overwrites_by_source_and_key(store: Store) -> None:
    await store.save_learned_limits([limit("coingecko", "a", rate=10.0), limit("coincap")])
    later = NOW + timedelta(minutes=1)
    newer = limit("coingecko", "a", rate=12.0, ceiling=15.0, at=later)
    for _ in range(2):  # idempotent: the same save twice leaves the same rows
        await store.save_learned_limits([newer])
    assert await store.load_learned_limits() == [limit("coincap"), newer]
    # Within one save the last limit of a key wins; a ceiling can be cleared again.
    cleared = limit("coingecko", "a", rate=11.0, ceiling=None, at=later)
    await store.save_learned_limits([newer, cleared])
    assert await store.load_learned_limits() == [limit("coincap"), cleared]
    await store.save_learned_limits([])  # nothing to save: nothing changes
    assert len(await store.load_learned_limits()) == 2


async def test_reset_forgets_one_source_under_every_key_or_everything(store: Store) -> None:
    await store.save_learned_limits(
        [limit("coingecko", "a"), limit("coingecko", "b"), limit("coingecko"), limit("coincap")]
    )
    assert await store.reset_learned_limits("coingecko") == 3
    assert await store.load_learned_limits() == [limit("coincap")]
    assert await store.reset_learned_limits("coingecko") == 0
    await store.save_learned_limits([limit("blockchair", "z")])
    assert await store.reset_learned_limits() == 2
    assert await store.load_learned_limits() == []
    assert await store.reset_learned_limits() == 0


async def test_a_naive_time_is_refused_and_nothing_is_saved(store: Store) -> None:
    naive = limit("coincap", at=datetime.now())  # naive: the point of the test
    with pytest.raises(ValueError, match="naive"):
        await store.save_learned_limits([limit("coingecko"), naive])
    assert await store.load_learned_limits() == []


async def test_limit_writes_and_reads_are_retried(
    faulty_store: tuple[Store, FaultInjector],
) -> None:
    store, faults = faulty_store
    budget = {"left": 2}

    def twice(statement: str, params: Any) -> bool:
        if "learned_limits" not in statement or budget["left"] == 0:
            return False
        budget["left"] -= 1
        return True

    faults.rules.append(twice)
    await store.save_learned_limits([limit("coingecko")])
    assert faults.failed == 2
    budget["left"] = 2
    assert await store.load_learned_limits() == [limit("coingecko")]
    assert faults.failed == 4
    faults.permanent = True
    budget["left"] = 1
    with pytest.raises(StoreError, match="resetting learned limits: injected"):
        await store.reset_learned_limits()
    assert faults.failed == 5  # a permanent error is not retried
    assert len(await store.load_learned_limits()) == 1


async def test_concurrent_saves_of_the_same_key_leave_one_row(store: Store) -> None:
    saves = [store.save_learned_limits([limit("coingecko", "a", rate=r)]) for r in range(20)]
    await asyncio.gather(*saves)
    (only,) = await store.load_learned_limits()
    assert (only.source, only.key_id) == ("coingecko", "a") and 0 <= only.rate_per_minute < 20
