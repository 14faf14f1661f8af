"""Unit tests of SourceLimiter's arithmetic (fake clock)."""

from __future__ import annotations

from coinharvest.engine.limiter import SourceLimiter
from coinharvest.models import SourceLimits


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_spacing_window_in_flight_and_cooldown() -> None:
    clock = FakeClock()
    lim = SourceLimiter("s", SourceLimits(2, 1.0, 3, window_s=10.0), clock)
    assert lim.try_start()
    assert not lim.try_start() and lim.ready_at() == 1.0
    clock.now = 1.0
    assert lim.try_start()
    clock.now = 2.0
    assert lim.ready_at() is None  # two in flight
    lim.release()
    assert lim.try_start()  # third start in the window
    lim.release()
    lim.release()
    clock.now = 3.0
    assert lim.ready_at() == 10.0  # the oldest start must leave the 10 s window first
    lim.cool_down(12.0)
    lim.cool_down(11.0)  # never shortens
    assert lim.ready_at() == 12.0


def test_restamp_counts_spacing_and_window_from_the_real_send() -> None:
    clock = FakeClock()
    lim = SourceLimiter("s", SourceLimits(5, 1.0, 2, window_s=10.0), clock)
    assert lim.try_start()
    lim.restamp(0.0, 0.3)  # the request really left 300 ms later
    assert lim.ready_at() == 1.3
    clock.now = 1.3
    assert lim.try_start()
    assert lim.ready_at() == 10.3  # the window counts from 0.3, not 0.0
    lim.restamp(1.3, 1.0)  # never earlier
    assert lim.ready_at() == 10.3
