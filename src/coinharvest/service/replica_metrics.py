"""Leadership metrics of replicas, a part of `coinharvest.service.metrics.Metrics`::

    coinharvest_leader              gauge    1 while this process runs the scheduled ticks,
                                             else 0
    coinharvest_takeovers_total     counter  times this process became the leader after
                                             another replica had led (a failover to it)

``leader`` by mode:

- ``coinharvest run`` without an election (SQLite: one process per file) is its own leader:
  1 from the moment it has a scheduler (`Metrics.watch`).
- a replica in an election: what it was last told by `LeaderMetrics.leading`; the first
  call switches the gauge from "has a scheduler" to the election's word for good, so an
  election should call ``leading(False)`` before its first check (a follower never shows 1).
- ``coinharvest serve`` (no scheduler, no election): 0; it never runs ticks.

So ``sum by (job) (coinharvest_leader)`` over the ``run`` processes of one database is 1 when
all is well, 0 while nobody leads. ``takeovers_total`` counts only takeovers: the first
replica of a fresh deployment becoming leader with nobody before it is not one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["LeaderMetrics"]

PREFIX = "coinharvest"


class LeaderMetrics:
    """The ``leader`` and ``takeovers_total`` series (see the module docstring); a base of
    `Metrics`, which calls `_define_leadership` once and `_has_scheduler` from ``watch``.
    Every method is synchronous, cheap and never raises (called from the election's loop)."""

    _leader: Gauge
    _takeovers: Counter
    _elected: bool | None
    _scheduled: bool

    def _define_leadership(self, registry: CollectorRegistry) -> None:
        self._leader = Gauge(
            f"{PREFIX}_leader",
            "1 while this process runs the scheduled ticks (the leader of its replicas, or "
            "a coinharvest run alone), else 0.",
            registry=registry,
        )
        self._takeovers = Counter(
            f"{PREFIX}_takeovers",
            "Times this process became the leader after another replica had led.",
            registry=registry,
        )
        self._elected = None
        self._scheduled = False

    def _has_scheduler(self) -> None:
        """This process runs a scheduler: without an election, it leads."""
        self._scheduled = True
        self._show_leader()

    def leading(self, is_leader: bool) -> None:
        """The election's word: this replica leads (True) or follows (False) from now on."""
        self._elected = is_leader
        self._show_leader()

    def took_over(self) -> None:
        """This replica just became the leader after another one had led: one takeover.
        (Call `leading` too; this only counts.)"""
        self._takeovers.inc()

    def _show_leader(self) -> None:
        leads = self._scheduled if self._elected is None else self._elected
        self._leader.set(1.0 if leads else 0.0)
