"""A dead upstream (nothing listens) fails fast: the circuit opens after a few connection
failures, over real sockets, and its coins fall back instead of waiting out every retry."""

from __future__ import annotations

import random
import socket

from coinharvest.config import load_settings
from coinharvest.engine import Engine, RetryPolicy
from coinharvest.errors import TransientError
from coinharvest.models import Coin, CoinStatus
from coinharvest.sources.base import close_sources
from coinharvest.sources.registry import build_sources, effective_limits

from .sourcekit import make_source


def _closed_port() -> str:
    """A loopback URL nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_a_refused_connection_is_reported_unreachable() -> None:
    source = make_source("nano", _closed_port())
    try:
        await source.fetch([Coin("XNO", "Nano", {"nano": "nano"}, (("nano",),))])
    except TransientError as exc:
        assert exc.unreachable and "ConnectError" in str(exc) and "127.0.0.1" in str(exc)
    else:
        raise AssertionError("a closed port answered")
    finally:
        await source.aclose()


async def test_a_dead_source_opens_its_circuit_and_its_coins_fall_back() -> None:
    dead = _closed_port()
    env = {"THREEXPL_BATCH_SIZE": "1", "THREEXPL_MIN_INTERVAL_MS": "10"}
    settings = load_settings(env, None)
    # The fallback is dead too: every coin fails, and fast.
    base_urls = {"3xpl": dead, "nano": _closed_port()}
    sources = build_sources(settings, names=["3xpl", "nano"], base_urls=base_urls)
    coins = [
        Coin(f"C{i}", f"Coin {i}", {"3xpl": f"chain{i}", "nano": "nano"}, (("3xpl", "nano"),))
        for i in range(8)
    ]
    engine = Engine(
        sources,
        limits=effective_limits(settings, sources),
        batch_sizes={"3xpl": 1, "nano": 1},
        retry=RetryPolicy(base_s=0.05, max_attempts=4, rng=random.Random(0)),
        breaker_failures=3,
        breaker_cooloff_s=60.0,
    )
    try:
        summary = await engine.run(coins)
    finally:
        await close_sources(sources.values())
    assert summary.coins_failed == 8
    per_source = {name: sum(1 for j in summary.jobs if j.source == name and j.started_s is not None)
                  for name in ("3xpl", "nano")}  # fmt: skip
    # Three connection failures in a row open each circuit; nothing more is sent.
    assert per_source == {"3xpl": 3, "nano": 3}
    assert engine.breakers["3xpl"].state == "open" and engine.breakers["nano"].state == "open"
    errors = [r.error or "" for r in summary.results]
    assert all("skipped: unreachable" in e or "ConnectError" in e for e in errors)
    assert all(r.status is CoinStatus.FAILED for r in summary.results)
