"""Deletable model versions (issue 17): a deleted version's number is never given to another version.

- New `models.deleted_through`: the highest version number deleted from the model (NULL: none). Publishing takes
  the number after both the last registered version and this one, so a stream pinned to a deleted version, a
  replica's cached folder or a loaded copy can never be mistaken for a newer version under the same number.

Revision ID: 0004_version_deletes
Revises: 0003_replicas
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_version_deletes"
down_revision: str | None = "0003_replicas"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("deleted_through", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("deleted_through")
