"""Shared limits (``SHARED_LIMITS=on``): per-source limiter state and its PL/pgSQL functions,
on PostgreSQL only (`coinharvest.storage.shared_limiter_sql`): the limits' tables, the
in-flight leases (each with its owner, whose session advisory lock says it lives) and the
``shared_limit_owners`` sequence that numbers the owners. SQLite is one process's database:
its limits stay in process, so this revision changes nothing there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from coinharvest.storage.shared_limiter_sql import CREATE, DROP

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in CREATE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in DROP:
        op.execute(statement)
