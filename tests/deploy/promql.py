"""Metric names in PromQL expressions, and the names a Prometheus exposition lets a query use.

Enough of PromQL for the dashboards and rules in deploy/: label matchers, range and offset
selectors, vector-matching clauses, string and number literals and Grafana variables are
dropped; what is left and is not a function, keyword or aggregation is a metric name.
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["metric_names", "queryable_names"]

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
_STRIP = (
    re.compile(r"\$\{[^}]*\}|\$\w+"),  # Grafana variables ($__rate_interval, ${datasource})
    re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''),  # string literals
    re.compile(r"\{[^}]*\}"),  # label matchers
    re.compile(r"\[[^\]]*\]"),  # range / subquery selectors
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),
)
#: Grafana's ``label_values(metric, label)``: keep the metric, drop the label name.
_LABEL_VALUES = re.compile(r"\blabel_values\s*\(([^,()]*),[^()]*\)")
_NAME = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")
#: Metric suffixes a query may use, by the family type in the exposition.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords and labels left out)."""
    text = expr
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    text = _LABEL_VALUES.sub(r" \1 ", text)
    names = set()
    for match in _NAME.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def queryable_names(exposition: str) -> set[str]:
    """Every series name a query may use against `exposition` (text format): each family's
    name with the suffixes of its type (a counter ``x`` is ``x_total``, a histogram ``x`` is
    ``x_bucket``/``x_sum``/``x_count``), present even when the family has no sample yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
