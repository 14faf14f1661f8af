"""Alembic migrations of the coinharvest schema (``env.py`` + ``versions/``).

Applied by `coinharvest.storage.migrate.upgrade` (on every store open and by
``coinharvest db upgrade``). The ``alembic`` command also works from the repository root:
``alembic -c src/coinharvest/storage/migrations/alembic.ini upgrade head``, with the URL from
``DATABASE_URL`` or ``-x url=...``.
"""
