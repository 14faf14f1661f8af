"""Coin results keep notes on the metrics their sources could not give, and why.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Older results have no notes (NULL): nothing was recorded about dropped metrics then.
    op.add_column("coin_results", sa.Column("notes", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("coin_results") as batch:
        batch.drop_column("notes")
