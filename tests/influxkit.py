"""A strict parser of InfluxDB line protocol, as coinharvest writes it (no library needed).

Stricter than the spec where coinharvest promises more: a backslash in a name is always
escaped (``\\\\``); every name is non-empty and does not start with ``_``; tags are sorted by
key; every field is a float (no ``i``/``u`` integers, strings or booleans); every line has a
nanosecond timestamp. Anything else fails with AssertionError naming the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Point", "parse", "parse_line"]

_MEAS = r"(?:[^\\, \n\r]|\\[\\, ])+"  # measurement: `=` may stay bare
_KEY = r"(?:[^\\,= \n\r]|\\[\\,= ])+"  # tag key, tag value, field key
_FLOAT = r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
_LINE = re.compile(
    rf"(?P<m>{_MEAS})"
    rf"(?P<tags>(?:,{_KEY}={_KEY})*)"
    rf" (?P<fields>{_KEY}={_FLOAT}(?:,{_KEY}={_FLOAT})*)"
    r" (?P<ts>-?\d{1,19})"
)
_PAIR = re.compile(rf"({_KEY})=({_KEY}|{_FLOAT})")
_UNESCAPE = re.compile(r"\\([\\,= ])")


@dataclass(frozen=True)
class Point:
    """One parsed line: names unescaped, values as floats."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, float]
    ns: int


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text)


def _pairs(text: str) -> list[tuple[str, str]]:
    """The ``k=v`` pairs of a comma-joined set (`text` already matched the grammar)."""
    pairs = [(m.group(1), m.group(2)) for m in _PAIR.finditer(text)]
    assert ",".join(f"{k}={v}" for k, v in pairs) == text, text
    return pairs


def parse_line(line: str) -> Point:
    """`line` (no newline) as a `Point`; AssertionError if it breaks the grammar above."""
    match = _LINE.fullmatch(line)
    assert match is not None, f"not line protocol: {line!r}"
    tags = _pairs(match["tags"][1:]) if match["tags"] else []
    keys = [_unescape(k) for k, _ in tags]
    assert keys == sorted(keys), f"tags not sorted by key: {line!r}"
    fields = _pairs(match["fields"])
    names = [_unescape(k) for k, _ in fields]
    assert len(set(names)) == len(names), f"a field twice: {line!r}"
    for name in [_unescape(match["m"]), *keys, *names]:
        assert not name.startswith("_"), f"name {name!r} starts with '_': {line!r}"
    return Point(
        _unescape(match["m"]),
        {_unescape(k): _unescape(v) for k, v in tags},
        {_unescape(k): float(v) for k, v in fields},
        int(match["ts"]),
    )


def parse(text: str) -> list[Point]:
    """Every line of `text`, which must end with a newline and hold no blank line."""
    assert text == "" or text.endswith("\n"), f"no final newline: {text[-80:]!r}"
    return [parse_line(line) for line in text.splitlines()]
