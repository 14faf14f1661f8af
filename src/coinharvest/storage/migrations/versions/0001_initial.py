"""Initial schema: runs, coin_results, observations, job_events.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.Column("duration_s", sa.Float),
        sa.Column("coins_total", sa.Integer, nullable=False),
        sa.Column("coins_ok", sa.Integer, nullable=False),
        sa.Column("coins_failed", sa.Integer, nullable=False),
        sa.Column("coins_deferred", sa.Integer, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("rate_limited", sa.Integer, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("max_in_flight", sa.Integer, nullable=False),
        sa.Column("store_errors", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("owner", sa.String(255)),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_table(
        "coin_results",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _TS),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("observation_count", sa.Integer, nullable=False),
        sa.Column("stored_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "symbol", name="pk_coin_results"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name="fk_coin_results_runs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_coin_results_symbol_run_id", "coin_results", ["symbol", "run_id"])
    op.create_table(
        "observations",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("observed_at", _TS, nullable=False),
        sa.Column("collected_at", _TS, nullable=False),
        sa.Column("confidence", sa.String(8), nullable=False),
        sa.Column("estimated", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_observations"),
        sa.UniqueConstraint(
            "run_id",
            "symbol",
            "source",
            "metric",
            name="uq_observations_run_id_symbol_source_metric",
        ),
        sa.ForeignKeyConstraint(
            ["run_id", "symbol"],
            ["coin_results.run_id", "coin_results.symbol"],
            name="fk_observations_coin_results",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_observations_symbol_metric_observed_at",
        "observations",
        ["symbol", "metric", "observed_at"],
    )
    op.create_table(
        "job_events",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("symbols", sa.Text, nullable=False),
        sa.Column("queued_s", sa.Float, nullable=False),
        sa.Column("started_s", sa.Float),
        sa.Column("ended_s", sa.Float),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("run_id", "job_id", "attempt", name="pk_job_events"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name="fk_job_events_runs", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("job_events")
    op.drop_table("observations")
    op.drop_table("coin_results")
    op.drop_table("runs")
