"""What the adaptive limit controller learned, per source and API key, kept across runs; an
index for counting the requests sent since a time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nothing learned yet: every source starts from its configured limits.
    op.create_table(
        "learned_limits",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(128), nullable=False),
        sa.Column("concurrency", sa.Float, nullable=False),
        sa.Column("rate_per_minute", sa.Float, nullable=False),
        sa.Column("ceiling_per_minute", sa.Float),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "key_id", name="pk_learned_limits"),
    )
    # Covering: the requests of the runs since a time are counted from this index alone, so
    # the planners (PostgreSQL's too) prefer it to scanning every job event ever stored.
    op.create_index(
        "ix_job_events_run_id_source_started_s", "job_events", ["run_id", "source", "started_s"]
    )


def downgrade() -> None:
    op.drop_index("ix_job_events_run_id_source_started_s", table_name="job_events")
    op.drop_table("learned_limits")
