"""Schemathesis against the service's own OpenAPI document, in process (ASGI, no network).

Every operation of ``/openapi.json`` (``POST /api/runs`` and ``DELETE /api/limits`` included:
a token, a scheduler over a simulated source, learned limits read from the database) gets
generated requests, valid and invalid, and every answer is
checked: no 5xx, a documented status, content type and body shape, valid data accepted,
invalid data refused, the bearer token enforced. Bounded: a few examples per operation and
no deadline per example, a few seconds in all.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from coinharvest.coins import load_coins
from coinharvest.engine import Engine
from coinharvest.engine.hooks import MemorySink
from coinharvest.models import Coin, SourceLimits
from coinharvest.service.api import ServiceState, create_app
from coinharvest.service.app import RunTracker
from coinharvest.service.limits import LimitsDesk
from coinharvest.service.metrics import Metrics
from coinharvest.service.scheduler import Scheduler
from coinharvest.sources.simulated import SimulatedSource
from coinharvest.storage.limits import reset_limits

from .conftest import TOKEN, Filled

#: Examples per operation; with the coverage phase's own cases, ~15 s for the whole API.
#: ``COINHARVEST_FUZZ_EXAMPLES=1000`` for a deeper look.
EXAMPLES = int(os.environ.get("COINHARVEST_FUZZ_EXAMPLES") or 40)
#: schemathesis' in-process client sends this ``Host``.
TEST_HOST = "testserver"


@pytest.fixture(scope="module")
def api_schema(filled: Filled) -> schemathesis.BaseSchema:
    """The app over the filled database, with a scheduler and a token, as a loaded schema.

    The engine connects lazily, in schemathesis' own event loop thread (no pool: nothing
    outlives a request).
    """
    db = create_async_engine(filled.url, poolclass=NullPool)
    source = SimulatedSource("sim", default_latency=0.01)
    tracker = RunTracker(MemorySink())
    coin = Coin("AAA", "Coin A", {"sim": "a"}, (("sim",),))
    sched = Scheduler(Engine({"sim": source}, sink=tracker), lambda: [coin], interval_s=3600)
    coins = load_coins()
    limits = {"sim": SourceLimits(2, 0.0, 30, quota_per_day=100)}
    desk = LimitsDesk(db, limits, {"sim": ""}, adaptive=True, resetter=DatabaseReset(db))
    state = ServiceState(
        db=db,
        metrics=Metrics(["sim"]),
        coins=lambda: coins,
        scheduler=sched,
        api_token=TOKEN,
        started_run=tracker.next_run_id,
        limits=desk,
    )
    app = create_app(state, trusted_hosts=["localhost", TEST_HOST])
    return schemathesis.openapi.from_asgi("/openapi.json", app)


class DatabaseReset:
    """Deletes learned limits on a connection of its own (the `Store` is bound to one loop)."""

    def __init__(self, db: AsyncEngine) -> None:
        self.db = db

    async def reset_learned_limits(self, source: str | None = None) -> int:
        async with self.db.begin() as conn:
            return await reset_limits(conn, source)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_keeps_its_openapi_promises(case: schemathesis.Case[Any]) -> None:
    if case.query and "cursor" in case.query:
        # A cursor is valid only as the API issued it (next_cursor, checked): a made-up one
        # that fits the schema is still a 422; every other check applies.
        case.call_and_validate(excluded_checks=[positive_data_acceptance])
    else:
        case.call_and_validate()
