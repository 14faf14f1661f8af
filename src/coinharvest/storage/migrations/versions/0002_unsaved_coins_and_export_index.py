"""Runs record how many coins could not be stored; an index for `export --since`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing runs predate the count: they are taken as fully stored (0).
    op.add_column(
        "runs",
        sa.Column("coins_unsaved", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_index("ix_observations_collected_at", "observations", ["collected_at"])


def downgrade() -> None:
    op.drop_index("ix_observations_collected_at", table_name="observations")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("coins_unsaved")
