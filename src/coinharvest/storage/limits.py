"""Learned limits: what the adaptive controller learned per source and API key, across runs.

One row of ``learned_limits`` (revision 0004) per ``(source, key_id)``; `key_id` is the
fingerprint of the API key in use (``""`` without one), so a new key starts afresh.

- `load_limits` / `save_limits` / `reset_limits` work on a connection inside the caller's
  transaction (the `Store` wraps them in its gate and retries: `Store.load_learned_limits`,
  `Store.save_learned_limits`, `Store.reset_learned_limits`);
- `learned_limits(db)` reads them on an engine, as `queries` does, for read-only commands.

Writes are upserts on ``(source, key_id)``: saving the same limits twice leaves one row.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinharvest.models import LearnedLimit
from coinharvest.storage.failures import translate
from coinharvest.storage.schema import learned_limits as table
from coinharvest.storage.writes import upsert

__all__ = ["learned_limits", "load_limits", "reset_limits", "save_limits"]

_KEYS = ("source", "key_id")
_VALUES = ("concurrency", "rate_per_minute", "ceiling_per_minute", "updated_at")


async def load_limits(conn: AsyncConnection) -> list[LearnedLimit]:
    """Every stored learned limit, ordered by source then key id (``[]`` when none)."""
    rows = await conn.execute(
        select(*(table.c[name] for name in _KEYS + _VALUES)).order_by(
            table.c.source, table.c.key_id
        )
    )
    return [LearnedLimit(**row._mapping) for row in rows]


async def save_limits(conn: AsyncConnection, limits: Sequence[LearnedLimit]) -> None:
    """Insert or overwrite each of `limits` by ``(source, key_id)``; other rows are kept.

    Idempotent. Of several limits with the same key the last one wins.

    :raises ValueError: an `updated_at` is naive (nothing is saved).
    """
    naive = [limit for limit in limits if limit.updated_at.tzinfo is None]
    if naive:
        raise ValueError(f"naive updated_at in {naive[0]!r}: learned limits need aware UTC times")
    unique = {(limit.source, limit.key_id): limit for limit in limits}
    if not unique:
        return
    rows = [{name: getattr(limit, name) for name in _KEYS + _VALUES} for limit in unique.values()]
    await conn.execute(upsert(conn, table, _KEYS, _VALUES), rows)


async def reset_limits(conn: AsyncConnection, source: str | None = None) -> int:
    """Delete what was learned of `source` (under every key), or of every source when None.

    :returns: the number of rows deleted (0 when there was nothing to forget).
    """
    stmt = delete(table)
    if source is not None:
        stmt = stmt.where(table.c.source == source)
    return (await conn.execute(stmt)).rowcount


async def learned_limits(db: AsyncEngine) -> list[LearnedLimit]:
    """`load_limits` on a connection of its own, for read-only commands.

    :raises StoreError: the database could not be read (one line).
    """
    with translate("cannot read learned limits"):
        async with db.connect() as conn:
            return await load_limits(conn)
