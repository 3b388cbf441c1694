"""Online interval calibration (issue 16): forecasts whose actuals have arrived keep the intervals at their level.

- New table `interval_calibrations`: per (model, version, series) the calibrator's state and the series' recent
  actuals, as versioned JSON (`app.serving.online_intervals`), with the number of actuals folded in.

Revision ID: 0005_interval_calibration
Revises: 0004_version_deletes
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_interval_calibration"
down_revision: str | None = "0004_version_deletes"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "interval_calibrations",
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.String(length=200), nullable=False),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "version", "series_id"),
    )
    op.create_index(
        "ix_interval_calibrations_model_updated",
        "interval_calibrations",
        ["model_name", "version", "updated_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_interval_calibrations_model_updated", table_name="interval_calibrations")
    op.drop_table("interval_calibrations")
