"""Storage: runs, per-coin results, observations and job timelines in SQLite or PostgreSQL.

- `Store` (``store.py``): the engine's `ResultSink`; one transaction per coin, idempotent,
  retried, recovering runs left ``running`` by a crash.
- `open_store` / `store_from_settings` / `reader` (``factory.py``): from `Settings`.
- ``queries.py``: runs list, run detail, latest values, history, export rows.
- ``limits.py``: what the adaptive limit controller learned, per source and API key.
- ``usage.py``: requests sent since a time, per source (daily and monthly quotas).
- ``schema.py`` + ``migrations/`` (Alembic, applied on every open) + ``migrate.py``.
- No Rich and no Typer here: the CLI's storage commands live in ``coinharvest.cli``.
"""

from __future__ import annotations

from coinharvest.storage.database import database_url, open_database
from coinharvest.storage.factory import open_store, reader, store_from_settings
from coinharvest.storage.store import Store, WritePolicy

__all__ = [
    "Store",
    "WritePolicy",
    "database_url",
    "open_database",
    "open_store",
    "reader",
    "store_from_settings",
]
