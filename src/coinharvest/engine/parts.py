"""What one run uses of its engine: the long-lived parts, handed to the run, not the engine.

The `Engine` owns these across runs (limiters remember spacing and cooldowns, the slots
are shared); a run receives them as one `RunParts` and never reaches back into the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coinharvest.engine.adaptive import SourceAdaptation
from coinharvest.engine.breaker import CircuitBreaker
from coinharvest.engine.hooks import EngineObserver, ResultSink
from coinharvest.engine.limiter import Clock, SourceLimiter
from coinharvest.engine.retry import RetryPolicy
from coinharvest.engine.slots import GlobalSlots
from coinharvest.sources.base import Source

if TYPE_CHECKING:
    from coinharvest.engine.shared_limits import SharedLimits

__all__ = ["RunParts"]


@dataclass(frozen=True, slots=True)
class RunParts:
    """The engine's parts a run works with (see the module docstring).

    :ivar sources: by name; :ivar limiters: one per source, same names.
    :ivar batch_sizes: most coins per job, per source.
    :ivar slots: the global cap (``MAX_COLLECTION_CONCURRENCY``).
    :ivar job_timeout_s: safety net around one ``fetch`` (None: none).
    :ivar clock: monotonic seconds, the limiters' clock.
    :ivar breakers: one circuit breaker per source (engine/breaker.py).
    :ivar adaptations: the adaptive controllers per source (empty: ``ADAPTIVE_LIMITS=off``).
    :ivar shared: the limits shared through PostgreSQL (None: ``SHARED_LIMITS=off``).
    """

    sources: Mapping[str, Source]
    limiters: Mapping[str, SourceLimiter]
    batch_sizes: Mapping[str, int]
    slots: GlobalSlots
    retry: RetryPolicy
    sink: ResultSink
    observer: EngineObserver
    clock: Clock
    job_timeout_s: float | None
    breakers: Mapping[str, CircuitBreaker]
    adaptations: Mapping[str, SourceAdaptation]
    shared: SharedLimits | None = None
