"""Hardening of the engine: bounded pauses, a dead source fails fast, one redaction point.

Runs on the virtual clock (tests/vclock.py): timings are exact and cost no real time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime

from enginekit import coin
from vclock import run_virtual

from coinharvest.engine import Engine, RetryPolicy
from coinharvest.engine.breaker import CircuitBreaker, CircuitState
from coinharvest.errors import BadResponse, RateLimited, TransientError
from coinharvest.models import Coin, CoinAnswer, CoinStatus, Observation, SourceLimits
from coinharvest.sources.base import FetchResult, Source

KEY = "s3cret-API-KEY-0123456789"


class Scripted(Source):
    """A source that answers each request with the next item of `script` (then the last)."""

    def __init__(self, name: str, script: Sequence[object], latency: float = 0.05) -> None:
        self.name = name
        self.script = list(script)
        self.latency = latency
        self.calls = 0
        self.default_limits = SourceLimits(max_concurrency=1)

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        await asyncio.sleep(self.latency)
        if isinstance(step, BaseException):
            raise step
        now = datetime.now(UTC)
        return {c.symbol: [Observation(c.symbol, self.name, "m", 1.0, now)] for c in coins}

    def redact(self, text: str) -> str:
        return text.replace(KEY, "***")


def _engine(*sources: Source, **options: object) -> Engine:
    return Engine(
        {s.name: s for s in sources},
        retry=RetryPolicy(max_attempts=4, rng=random.Random(0), max_pause_s=300.0),
        **options,  # type: ignore[arg-type]  # test-only pass-through of keyword options
    )


def test_a_huge_retry_after_is_capped_and_the_run_ends() -> None:
    limited = RateLimited("slow", 999_999_999.0, "HTTP 429: too many")
    slow = Scripted("slow", [limited, "ok"])

    async def go() -> tuple[float, CoinStatus]:
        engine = _engine(slow)
        summary = await engine.run([coin("A", "slow")])
        return summary.duration_s, summary.results[0].status

    duration, status = run_virtual(go())
    assert status is CoinStatus.OK and slow.calls == 2
    assert 300.0 <= duration <= 300.0 + 30.0 + 1.0  # capped pause (+ its jitter) and latency


def test_an_infinite_retry_after_is_capped_too() -> None:
    slow = Scripted("slow", [RateLimited("slow", float("inf")), "ok"])
    summary = run_virtual(_engine(slow).run([coin("A", "slow")]))
    assert summary.results[0].status is CoinStatus.OK and summary.duration_s < 400.0


def test_a_dead_source_opens_its_circuit_and_its_other_jobs_fail_at_once() -> None:
    refused = TransientError("dead", "ConnectError on GET /: refused", unreachable=True)
    dead = Scripted("dead", [refused], latency=0.001)
    live = Scripted("live", ["ok"], latency=5.0)
    changes: list[tuple[str, CircuitState]] = []
    coins = [coin(f"D{i}", "dead") for i in range(10)] + [coin("L", "live")]

    async def go() -> float:
        engine = _engine(dead, live, breaker_failures=3, breaker_cooloff_s=30.0)
        engine.breakers["dead"]._on_change = lambda s, state: changes.append((s, state))
        summary = await engine.run(coins)
        assert summary.coins_ok == 1 and summary.coins_failed == 10
        errors = {r.symbol: r.error or "" for r in summary.results}
        assert "unreachable (3 connection failures in a row" in errors["D9"]
        return summary.duration_s

    duration = run_virtual(go())
    assert dead.calls == 3  # three failures in a row, then nothing more is sent
    assert changes == [("dead", "open")]
    assert duration < 5.0 + 1.0  # ends with the live source, not after 10 × 4 attempts


def test_an_open_circuit_probes_after_its_cooloff_and_closes_on_an_answer() -> None:
    refused = TransientError("flaky", "ConnectError", unreachable=True)
    flaky = Scripted("flaky", [refused, refused, "ok"], latency=0.001)
    changes: list[tuple[str, CircuitState]] = []

    async def go() -> list[CoinStatus]:
        engine = _engine(flaky, breaker_failures=2, breaker_cooloff_s=30.0)
        engine.breakers["flaky"]._on_change = lambda s, state: changes.append((s, state))
        first = await engine.run([coin("A", "flaky")])
        refused_run = await engine.run([coin("B", "flaky")])  # within the cool-off: not sent
        await asyncio.sleep(31.0)
        probe = await engine.run([coin("C", "flaky")])
        return [first.results[0].status, refused_run.results[0].status, probe.results[0].status]

    statuses = run_virtual(go())
    assert statuses == [CoinStatus.FAILED, CoinStatus.FAILED, CoinStatus.OK]
    assert flaky.calls == 3
    assert changes == [("flaky", "open"), ("flaky", "half_open"), ("flaky", "closed")]


def test_breaker_counts_only_connection_failures_in_a_row() -> None:
    breaker = CircuitBreaker("s", failure_threshold=2, cooloff_s=10.0)
    assert not breaker.failure(0.0, "refused")
    breaker.success()  # an answer in between: the count starts again
    assert not breaker.failure(1.0, "refused")
    assert breaker.failure(2.0, "refused") and not breaker.allows(5.0)
    assert breaker.allows(12.0) and breaker.state == "half_open"
    assert breaker.failure(12.5, "refused") and breaker.open_until == 22.5


class Leaky(Source):
    """An upstream that echoes the key into a data field and an error message."""

    name = "leaky"

    async def fetch(self, coins: Sequence[Coin]) -> FetchResult:
        now = datetime.now(UTC)
        first, second = coins
        return {
            first.symbol: CoinAnswer(
                [Observation(first.symbol, self.name, "m", 1.0, now)],
                [f"leaky: m2: m2 is not a finite number: {KEY!r}"],
            ),
            second.symbol: BadResponse(self.name, f"expected a number, got {KEY!r}"),
        }

    def redact(self, text: str) -> str:
        return text.replace(KEY, "***")


def test_every_text_from_a_source_passes_its_redaction() -> None:
    leaky = Leaky()
    coins = [coin("A", "leaky"), coin("B", "leaky")]
    leaky.batch_size = 2
    summary = run_virtual(_engine(leaky).run(coins))
    texts = [
        *(t for r in summary.results for t in (*r.errors, *r.notes)),
        *(j.error or "" for j in summary.jobs),
    ]
    assert texts and not any(KEY in t for t in texts)
    assert any("***" in t for t in texts)


def test_an_error_raised_with_the_key_is_redacted_in_the_record() -> None:
    bad = Scripted("bad", [BadResponse("bad", f"HTTP 400: key {KEY} refused")])
    summary = run_virtual(_engine(bad).run([coin("A", "bad")]))
    assert KEY not in (summary.results[0].error or "")
    assert KEY not in (summary.jobs[0].error or "")


def test_a_connection_that_never_reached_the_upstream_costs_no_spacing() -> None:
    """A dead source with a 10 s spacing: its three failed tries go out at the back-off's
    pace, not 10 s apart (the upstream never saw them), and the run ends in seconds."""
    refused = TransientError("dead", "ConnectError: refused", unreachable=True)
    dead = Scripted("dead", [refused], latency=0.001)
    dead.default_limits = SourceLimits(max_concurrency=1, min_interval_s=10.0)
    summary = run_virtual(_engine(dead, breaker_failures=3).run([coin("A", "dead")]))
    assert dead.calls == 3 and summary.results[0].status is CoinStatus.FAILED
    assert summary.duration_s < 10.0  # was 2 × 10 s of spacing before


def test_a_deferred_job_does_not_overwrite_the_attempt_it_followed() -> None:
    slow = Scripted("slow", [RateLimited("slow", 60.0)])

    async def go() -> list[tuple[int, str]]:
        summary = await _engine(slow).run([coin("A", "slow")], deadline_s=5.0)
        return [(j.attempt, j.status.value) for j in summary.jobs]

    assert run_virtual(go()) == [(1, "rate_limited"), (2, "deferred")]
