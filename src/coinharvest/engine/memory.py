"""Carries learned limits and quota counts between the database and the engine's limiters.

Before each run (`recall`): the first time, the learned limits saved by earlier runs are
restored into the adaptive controllers (for the same API key only); every time, each quota's
counts are seeded from the requests the database says were sent this UTC day and month (by
any run of any process). After each run (`remember`): the learned limits are saved.

Reading or saving may fail (a locked or unreachable database): the run goes on with what
the engine already knows, and the failure is logged as a warning, never hidden.
"""

from __future__ import annotations

from collections.abc import Mapping

from coinharvest.engine.adaptive import SourceAdaptation
from coinharvest.engine.hooks import LimitStore
from coinharvest.engine.limiter import Clock, SourceLimiter
from coinharvest.engine.quota import WallClock, day_start, month_start
from coinharvest.logs import get_logger

__all__ = ["LimitMemory"]

log = get_logger("limiter")


class LimitMemory:
    """The engine's link to its `LimitStore` (see the module docstring)."""

    def __init__(
        self,
        store: LimitStore | None,
        limiters: Mapping[str, SourceLimiter],
        adaptations: Mapping[str, SourceAdaptation],
        clock: Clock,
        wall: WallClock,
    ) -> None:
        self.store = store
        self._limiters = limiters
        self._adaptations = adaptations
        self._clock = clock
        self._wall = wall
        self._restored = False

    async def recall(self) -> None:
        """Restore learned limits (once) and seed quota counts (see the module docstring)."""
        if self.store is None:
            return
        try:
            if not self._restored and self._adaptations:
                await self._restore(self.store)
            self._restored = True
            await self._seed_quotas(self.store)
        except Exception as exc:  # the run can go on with what it knows
            log.warning("could not read learned limits or quota counts: %s", exc)

    async def remember(self) -> None:
        """Save what the adaptive controllers learned."""
        if self.store is None or not self._adaptations:
            return
        at = self._wall()
        try:
            await self.store.save_learned_limits(
                [a.learned(at) for a in self._adaptations.values()]
            )
        except Exception as exc:  # next run starts from the ceilings again; not fatal
            log.warning("could not save learned limits: %s", exc)

    async def _restore(self, store: LimitStore) -> None:
        now, wall = self._clock(), self._wall()
        for learned in await store.load_learned_limits():
            adaptation = self._adaptations.get(learned.source)
            if adaptation is not None:
                age_s = max(0.0, (wall - learned.updated_at).total_seconds())
                adaptation.restore(learned, age_s, now)

    async def _seed_quotas(self, store: LimitStore) -> None:
        quotas = {n: lim.quota for n, lim in self._limiters.items() if lim.quota is not None}
        if not quotas:
            return
        wall = self._wall()
        today = await store.requests_since(day_start(wall))
        month = await store.requests_since(month_start(wall))
        for name, quota in quotas.items():
            quota.seed(today.get(name, 0), month.get(name, 0))
