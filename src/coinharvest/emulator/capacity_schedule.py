"""An upstream's capacity as a function of time (``capacity.concurrent`` and its ``steps``).

Pure functions of a :class:`~coinharvest.emulator.capacity_config.CapacityConfig` and the
seconds elapsed since its steps were configured. A step replaces the capacity at its
``at_s``; a ramp moves it linearly, from the value it had just before ``at_s`` (possibly
mid-way through an earlier ramp) to the step's ``concurrent``, over ``ramp_s`` seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from coinharvest.emulator.capacity_config import CapacityConfig

__all__ = ["capacity_at", "next_rise"]

#: Tolerance when flooring a ramp's level, so that a timer set for a crossing sees it.
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class _Segment:
    """The schedule from one step on: ``start`` (at ``at``) towards ``target``."""

    at: float
    start: float
    target: float
    ramp: float

    def level(self, t: float) -> float:
        if self.ramp <= 0 or t >= self.at + self.ramp:
            return self.target
        return self.start + (self.target - self.start) * (t - self.at) / self.ramp


def _current(cfg: CapacityConfig, elapsed: float) -> _Segment | None:
    """The segment in force at ``elapsed``; ``None`` before the first step."""
    segment: _Segment | None = None
    for step in cfg.steps:
        if step.at_s > elapsed:
            break
        before = segment.level(step.at_s) if segment is not None else cfg.concurrent
        start = float(step.concurrent) if before is None else float(before)
        segment = _Segment(step.at_s, start, float(step.concurrent), step.ramp_s)
    return segment


def _slots(level: float) -> int:
    return max(1, math.floor(level + _EPS))


def capacity_at(cfg: CapacityConfig, elapsed: float) -> int | None:
    """Requests that may be in service at ``elapsed`` seconds; ``None`` means unlimited."""
    if not cfg.steps:
        return cfg.concurrent
    segment = _current(cfg, elapsed)
    if segment is None:
        return cfg.concurrent
    return _slots(segment.level(elapsed))


def next_rise(cfg: CapacityConfig, elapsed: float) -> float | None:
    """The next elapsed time after which the capacity may be higher, or ``None``.

    That is the next step's ``at_s``, or, on a rising ramp, the moment its line reaches the
    next whole number, whichever comes first. Falling capacity needs no wake-up.
    """
    upcoming = next((step.at_s for step in cfg.steps if step.at_s > elapsed), None)
    segment = _current(cfg, elapsed)
    if segment is None or segment.target <= segment.start or elapsed >= segment.at + segment.ramp:
        return upcoming
    wanted = _slots(segment.level(elapsed)) + 1
    rate = (segment.target - segment.start) / segment.ramp
    crossing = max(elapsed, segment.at + (wanted - segment.start) / rate)
    return crossing if upcoming is None else min(upcoming, crossing)
