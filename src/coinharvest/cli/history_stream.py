"""Output of ``coinharvest history``: points written as they are read, never held all at once.

- `write_json(points, stream)`: the points as a JSON array, item by item, byte for byte what
  ``json.dumps(list, indent=2)`` would print (one item in memory at a time).
- `write_lines(symbol, metric, points, stream)`: one fixed-width line per point under a
  header (time, value in full, source, confidence, run): a table that needs no Rich layout
  of every row, for ``--all`` over any number of points.
- `stream_history(db, ...)`: every point of a period, read in keyset pages of `PAGE_ROWS`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import IO

from sqlalchemy.ext.asyncio import AsyncEngine

from coinharvest.cli.cells import when
from coinharvest.storage.paging import history_page
from coinharvest.storage.queries import HistoryPoint
from coinharvest.units import show

__all__ = ["PAGE_ROWS", "JsonArray", "stream_history", "write_lines"]

_dumps = json.JSONEncoder(ensure_ascii=False).encode

#: Points read per query by `stream_history`.
PAGE_ROWS = 5000


async def stream_history(
    db: AsyncEngine, symbol: str, metric: str, since: datetime | None
) -> AsyncIterator[HistoryPoint]:
    """Every value of `metric` of `symbol` since `since`, oldest first, page by page."""
    cursor: str | None = None
    while True:
        page = await history_page(db, symbol, metric, since=since, limit=PAGE_ROWS, cursor=cursor)
        for point in page.rows:
            yield point
        if (cursor := page.next_cursor) is None:
            return


class JsonArray:
    """Writes items to `stream` as ``json.dumps(items, indent=2)`` would, one at a time;
    nothing is written before the first item or `close` (``[]`` when none came)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.count = 0

    def add(self, item: dict[str, object]) -> None:
        if item and not any(isinstance(v, dict | list) for v in item.values()):
            # flat: the same text, without the (pure Python) indenting encoder
            fields = (f"{_dumps(k)}: {_dumps(v)}" for k, v in item.items())
            text = "{\n    " + ",\n    ".join(fields) + "\n  }"
        else:
            text = json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        self.stream.write(("[\n  " if self.count == 0 else ",\n  ") + text)
        self.count += 1

    def close(self) -> None:
        self.stream.write("\n]\n" if self.count else "[]\n")


def write_lines(
    symbol: str, metric: str, points: Iterable[HistoryPoint], stream: IO[str], *, first: bool
) -> None:
    """`points` as fixed-width lines; `first`: start with the title and the header."""
    if first:
        stream.write(f"{symbol.upper()} {metric}\n")
        stream.write(f"{'Observed (UTC)':<19}  {'Value':>22}  {'Source':<12}  Conf.   Run\n")
    for p in points:
        value = show(metric, p.value, exact=True)
        line = f"{when(p.observed_at):<19}  {value:>22}  {p.source:<12}  {p.confidence:<6}  "
        stream.write(line + p.run_id + "\n")
