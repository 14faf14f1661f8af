"""Replicas on one PostgreSQL: their heartbeats and leadership, the scheduled-tick fence, and
run requests forwarded to the leader (`coinharvest.service.leadership`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from coinharvest.storage.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("replica_id", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("http_url", sa.String(255)),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("leader_since", UTCDateTime()),
        sa.PrimaryKeyConstraint("replica_id", name="pk_replicas"),
    )
    op.create_index("ix_replicas_heartbeat_at", "replicas", ["heartbeat_at"])
    op.create_table(
        "schedule_ticks",
        sa.Column("interval_ms", sa.BigInteger, nullable=False),
        sa.Column("tick", sa.BigInteger, nullable=False),
        sa.Column("replica_id", sa.String(128), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("late_s", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("interval_ms", "tick", name="pk_schedule_ticks"),
        sa.UniqueConstraint("run_id", name="uq_schedule_ticks_run_id"),
    )
    op.create_table(
        "run_requests",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("run_id", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name="pk_run_requests"),
    )
    op.create_index("ix_run_requests_claimed_by", "run_requests", ["claimed_by"])


def downgrade() -> None:
    op.drop_index("ix_run_requests_claimed_by", table_name="run_requests")
    op.drop_table("run_requests")
    op.drop_table("schedule_ticks")
    op.drop_index("ix_replicas_heartbeat_at", table_name="replicas")
    op.drop_table("replicas")
