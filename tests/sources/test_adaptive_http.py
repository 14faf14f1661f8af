"""The adaptive rate control fed by real answers: the emulator's headers and 429s, over HTTP."""

from __future__ import annotations

import random

from coinharvest.emulator import EmulatorConfig, run_emulator
from coinharvest.engine import Engine
from coinharvest.engine.retry import RetryPolicy
from coinharvest.models import SourceLimits

from .sourcekit import coins_for, make_source


def _engine(base_url: str, limits: SourceLimits, name: str = "coingecko") -> Engine:
    source = make_source(name, base_url)
    return Engine(
        {name: source},
        limits={name: limits},
        batch_sizes={name: 1},
        retry=RetryPolicy(max_attempts=3, rng=random.Random(0)),
        adaptive=True,
    )


async def test_an_announced_limit_reaches_the_limiter_from_a_real_answer() -> None:
    async with run_emulator(EmulatorConfig()) as emu:
        await emu.set_upstream("coingecko", capacity={"hidden_rate": 10, "headers": True})
        engine = _engine(emu.base_urls["coingecko"], SourceLimits(3, 2.0, 30))
        summary = await engine.run(coins_for("coingecko")[:1])
        await engine.sources["coingecko"].aclose()
    assert summary.coins_ok == 1
    adaptation = engine.adaptations["coingecko"]
    assert adaptation.rate.ceiling == 11.0 and adaptation.rate.announced
    assert abs(engine.limiters["coingecko"].spacing_s - 60.0 / 9.9) < 1e-9


async def test_a_real_429_lowers_the_rate_and_the_retry_waits_for_retry_after() -> None:
    """3xpl's 429 carries no rate-limit headers: the rate is cut by the 429 alone."""
    async with run_emulator(EmulatorConfig()) as emu:
        await emu.set_upstream("3xpl", capacity={"hidden_rate": 1, "hidden_window_s": 1.0})
        engine = _engine(emu.base_urls["3xpl"], SourceLimits(3, 0.05, 1200), "3xpl")
        summary = await engine.run(coins_for("3xpl")[:2])
        await engine.sources["3xpl"].aclose()
        stats = await emu.stats()
    assert summary.coins_ok == 2 and summary.rate_limited >= 1
    rate = engine.adaptations["3xpl"].rate
    assert not rate.announced and rate.rate <= 1200 / 2
    assert stats["hidden_rejected"]["3xpl"] >= 1
    assert stats["violations"]["total"] == 0, stats["violations"]  # no early retry either
