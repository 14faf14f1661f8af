"""The newest observation of every (coin, metric), kept with the writes: `latest` reads it
instead of ranking every observation ever stored.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = "symbol, metric, value, source, confidence, estimated, observed_at, run_id"

#: The newest observation per pair, ties to the one written last (the highest id): the
#: ranking `queries.latest_values` did before this revision. One statement on both backends.
_BACKFILL = (
    f"INSERT INTO latest_observations ({_COLUMNS}) "
    f"SELECT {_COLUMNS} FROM ("
    f"SELECT {_COLUMNS}, row_number() OVER (PARTITION BY symbol, metric "
    "ORDER BY observed_at DESC, id DESC) AS rn FROM observations"
    ") AS ranked WHERE rn = 1"
)


def upgrade() -> None:
    op.create_table(
        "latest_observations",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("confidence", sa.String(8), nullable=False),
        sa.Column("estimated", sa.Boolean, nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "metric", name="pk_latest_observations"),
    )
    op.execute(_BACKFILL)


def downgrade() -> None:
    op.drop_table("latest_observations")
