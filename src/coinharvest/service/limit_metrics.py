"""Prometheus series of each source's limits, read from the engine at scrape time.

`LimitCollector` asks ``engine.limit_views()`` (engine/adaptive.py) on every scrape, so the
series are what the limiters hold at that moment; nothing is pushed by the engine. Exposed
(gauges, all prefixed ``coinharvest_``)::

    source_concurrency_limit{source}            in-flight limit in force (learned, or the ceiling)
    source_concurrency_ceiling{source}          configured most in flight (MAX_<SRC>_CONCURRENCY)
    source_rate_limit_per_minute{source}        start rate in force per minute
    source_rate_ceiling_per_minute{source}      configured start rate per minute
    source_rate_refused_per_minute{source}      the rate the upstream last refused (429) or
                                                announced (x-ratelimit-limit); absent: never
    source_quota_used{source,period}            requests this UTC day / month (period="day"|"month")
    source_quota_limit{source,period}           today's allowance (the daily quota, or today's
                                                share of the month) / the monthly quota

A source without a rate limit has no rate series (its rate is unbounded, not a number); a
source without a quota has no quota series, and a quota of one period only has no
``quota_limit`` of the other. The quota counts are those the engine holds: read from the
database before each run, then counted as requests start.

Rates are per minute, not per second (Prometheus' base unit), on purpose: they are the unit
of the settings they are compared with (``<SRC>_RATE_LIMIT_PER_MINUTE``) and of the
upstreams' published limits, and the unit is in every name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from coinharvest.engine.adaptive import LimitView

__all__ = ["LimitCollector"]

PREFIX = "coinharvest_source"


class LimitCollector:
    """Each source's limits at scrape time (see the module docstring).

    :param views: returns the current views (``engine.limit_views``).
    """

    def __init__(self, views: Callable[[], Iterable[LimitView]]) -> None:
        self.views = views

    def collect(self) -> Iterator[Metric]:
        """One gauge family per series of the module docstring."""
        views = list(self.views())
        yield _gauge(
            "concurrency_limit",
            "In-flight limit in force: learned from response times, or the ceiling.",
            [(v.source, v.concurrency) for v in views],
        )
        yield _gauge(
            "concurrency_ceiling",
            "Configured most requests in flight (the learned limit never exceeds it).",
            [(v.source, v.max_concurrency) for v in views],
        )
        yield _gauge(
            "rate_limit_per_minute",
            "Start rate in force, per minute: learned from 429s and rate-limit headers, "
            "or the ceiling.",
            [(v.source, v.rate_per_minute) for v in views],
        )
        yield _gauge(
            "rate_ceiling_per_minute",
            "Configured start rate per minute (the learned rate never exceeds it).",
            [(v.source, v.max_rate_per_minute) for v in views],
        )
        yield _gauge(
            "rate_refused_per_minute",
            "Rate per minute at which the upstream last refused requests (429) or that its "
            "x-ratelimit-limit header announced.",
            [(v.source, v.ceiling_per_minute) for v in views],
        )
        yield from _quota(views)


def _quota(views: list[LimitView]) -> Iterator[Metric]:
    used = GaugeMetricFamily(
        f"{PREFIX}_quota_used",
        "Requests sent this UTC day or month (period), of a source with a quota.",
        labels=["source", "period"],
    )
    limit = GaugeMetricFamily(
        f"{PREFIX}_quota_limit",
        "Requests allowed: today's allowance (the daily quota, or today's share of the "
        "monthly one) for period=day, the monthly quota for period=month.",
        labels=["source", "period"],
    )
    for v in views:
        for period, count, allowed in (
            ("day", v.quota_used_day, v.quota_today),
            ("month", v.quota_used_month, v.quota_per_month),
        ):
            if count is not None:
                used.add_metric([v.source, period], count)
            if allowed is not None:
                limit.add_metric([v.source, period], allowed)
    yield used
    yield limit


def _gauge(name: str, doc: str, values: list[tuple[str, float | None]]) -> GaugeMetricFamily:
    """A gauge by source; None and infinite values are left out (no such limit)."""
    family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=["source"])
    for source, value in values:
        if value is not None and math.isfinite(value):
            family.add_metric([source], float(value))
    return family
