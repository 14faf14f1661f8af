"""Configuration of an upstream whose real limits differ from its documented ones.

The ``capacity`` section of an upstream (:class:`CapacityConfig`). Every default switches
the feature off, so an absent section changes nothing. Example (TOML)::

    [upstreams.3xpl.capacity]
    concurrent = 8          # requests *served* at once; more wait in a FIFO queue
    steps = [ { at_s = 20, concurrent = 2 }, { at_s = 40, concurrent = 8, ramp_s = 5 } ]
    hidden_rate = 10        # starts really allowed per hidden_window_s, per key / IP
    hidden_window_s = 60
    headers = true          # x-ratelimit-limit / -remaining / -reset on every answer
"""

from __future__ import annotations

import itertools

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CapacityConfig", "CapacityStep"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapacityStep(_Model):
    """A scheduled capacity change: from ``at_s`` on, the capacity is ``concurrent``.

    ``at_s`` counts from the moment the steps were configured (server start, reset, or a
    ``POST /__emulator__/config`` that changed ``steps``), like storms. With ``ramp_s > 0``
    the capacity moves linearly from its value at ``at_s`` to ``concurrent`` over ``ramp_s``
    seconds (the whole number of slots is the floor of the line, at least 1).
    """

    at_s: float = Field(ge=0)
    concurrent: int = Field(ge=1)
    ramp_s: float = Field(default=0.0, ge=0)


class CapacityConfig(_Model):
    """Hidden server capacity, hidden rate limit and quota headers of one upstream.

    * ``concurrent``: requests the server *serves* at once (``None``: unlimited). An
      admitted request waits in a FIFO queue until fewer than ``concurrent`` are in
      service, then is served for its sampled latency (``latency`` is the service time).
    * ``steps``: capacity changes during a run (:class:`CapacityStep`), strictly
      increasing in ``at_s``.
    * ``hidden_rate`` / ``hidden_window_s``: starts the upstream really allows per rolling
      window, per key (or client IP). A request over it gets the upstream's normal 429
      answer with ``Retry-After`` (whole seconds until the oldest start leaves the window,
      sent as ``limits.retry_after`` says); it is counted as ``hidden_rejected``, not as
      a violation, and is not a start.
    * ``headers``: send ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and
      ``x-ratelimit-reset`` on every answer to an identified caller, for ``hidden_rate``
      if set, else ``limits.rate`` (none when neither is set). The reset is in whole
      seconds, except CoinGecko's date (``YYYY-MM-DD HH:MM:SS +0000``) and a
      NanoRPCProxy's JavaScript date.
    """

    concurrent: int | None = Field(default=None, ge=1)
    steps: list[CapacityStep] = Field(default_factory=list)
    hidden_rate: int | None = Field(default=None, ge=1)
    hidden_window_s: float = Field(default=60.0, gt=0)
    headers: bool = False

    @model_validator(mode="after")
    def _steps_in_order(self) -> CapacityConfig:
        for before, after in itertools.pairwise(self.steps):
            if after.at_s <= before.at_s:
                raise ValueError(
                    f"capacity.steps must be in increasing at_s order "
                    f"(at_s {after.at_s:g} follows {before.at_s:g})"
                )
        if self.steps and self.concurrent is None and self.steps[0].ramp_s > 0:
            raise ValueError("capacity.steps[0] cannot ramp from unlimited: set concurrent")
        return self
