"""Replicas over one database (issue 15): model artifacts stored in the database, stream state as snapshots.

- New table `model_artifacts`: the bytes of each registered version's files (`weights.safetensors`,
  `manifest.json`) with their SHA-256, so a replica on another host loads every version with no shared disk; the
  local models folder becomes a cache of it. Versions registered before keep their files only in the folder
  (the registry copies them in when it finds them).
- New `streams.state_position`: the stream position at which `state` was saved. Scoring state is kept hot in
  memory and written as a snapshot every so often; the points stored after it are replayed to rebuild the state.
  NULL (rows written before) means the state is as of `point_count`, as it always was.

Revision ID: 0003_replicas
Revises: 0002_stream_detector
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_replicas"
down_revision: str | None = "0002_stream_detector"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "model_artifacts",
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("file", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["model_name"], ["models.name"]),
        sa.PrimaryKeyConstraint("model_name", "version", "file"),
    )
    with op.batch_alter_table("streams") as batch:
        batch.add_column(sa.Column("state_position", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("streams") as batch:
        batch.drop_column("state_position")
    op.drop_table("model_artifacts")
