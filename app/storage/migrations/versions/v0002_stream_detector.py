"""Streams for the one detector (issue 14): self-learning streams, alert-free backfills, irregular sampling.

- `streams.model_name` nullable (NULL: a self-learning stream with no registered model); new
  `streams.learning_points` (NULL: the detector's default learning period) and `streams.alerts` (false: alarms
  are stored but no webhooks fire; existing streams get true).
- `stream_points` keyed by (`stream_id`, `position`) instead of (`stream_id`, `timestamp`), so a duplicate-
  timestamp or late reading can be stored; a non-unique index on (`stream_id`, `timestamp`) keeps time lookups
  fast; `value` nullable (a missing reading); new `sampling` (how the point's timing was handled; NULL for the
  rows written before).

Existing rows keep their positions, which are already unique per stream (the stream's running point count).
Downgrading fails if points sharing a timestamp or missing values were stored since.

Revision ID: 0002_stream_detector
Revises: 0001_baseline
Create Date: 2026-07-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_stream_detector"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None

# PostgreSQL names an unnamed primary key `<table>_pkey`; SQLite reflects it unnamed, so the batch names it alike.
POINTS_PK = "stream_points_pkey"
POINTS_NAMING = {"pk": "%(table_name)s_pkey"}
POINTS_TIME_INDEX = "ix_stream_points_stream_id_timestamp"


def upgrade() -> None:
    with op.batch_alter_table("streams") as batch:
        batch.alter_column("model_name", existing_type=sa.String(length=64), nullable=True)
        batch.add_column(sa.Column("learning_points", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("alerts", sa.Boolean(), server_default=sa.true(), nullable=False))
    with op.batch_alter_table("stream_points", naming_convention=POINTS_NAMING) as batch:
        batch.drop_constraint(POINTS_PK, type_="primary")
        batch.create_primary_key(POINTS_PK, ["stream_id", "position"])
        batch.alter_column("value", existing_type=sa.Float(), nullable=True)
        batch.add_column(sa.Column("sampling", sa.String(length=16), nullable=True))
        batch.create_index(POINTS_TIME_INDEX, ["stream_id", "timestamp"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stream_points", naming_convention=POINTS_NAMING) as batch:
        batch.drop_index(POINTS_TIME_INDEX)
        batch.drop_column("sampling")
        batch.alter_column("value", existing_type=sa.Float(), nullable=False)
        batch.drop_constraint(POINTS_PK, type_="primary")
        batch.create_primary_key(POINTS_PK, ["stream_id", "timestamp"])
    with op.batch_alter_table("streams") as batch:
        batch.drop_column("alerts")
        batch.drop_column("learning_points")
        batch.alter_column("model_name", existing_type=sa.String(length=64), nullable=False)
