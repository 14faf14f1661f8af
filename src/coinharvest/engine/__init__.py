"""The engine: one run of collection under every source's limits (DESIGN §2-§4).

Public API: `Engine` (long-lived: limiters, slots, sources) and its two hooks, `ResultSink`
(where results go) and `EngineObserver` (who watches); `RetryPolicy` (back-off). The rest
(lanes, the dispatcher, the limiter, run bookkeeping, completion) is internal to the package;
docs/ARCHITECTURE.md shows how the parts fit.
"""

from __future__ import annotations

from coinharvest.engine.engine import Engine
from coinharvest.engine.hooks import EngineObserver, MemorySink, NullObserver, ResultSink
from coinharvest.engine.retry import RetryPolicy

__all__ = ["Engine", "EngineObserver", "MemorySink", "NullObserver", "ResultSink", "RetryPolicy"]
