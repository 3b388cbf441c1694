"""Baseline: the schema `Base.metadata.create_all` made before migrations existed.

A database made by that code has these tables but no `alembic_version`: this revision then creates only the
tables it lacks (none, for a database last opened by the create_all code), which amounts to stamping it with
this revision, and the later revisions upgrade it in place. An empty database gets every table.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-07-01
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


class IndexSpec(NamedTuple):
    name: str
    columns: list[str]
    unique: bool = False


def _create_table(name: str, *elements: sa.schema.SchemaItem, indexes: tuple[IndexSpec, ...] = ()) -> None:
    """Create the table and its indexes unless the (pre-migration) database already has the table."""
    if sa.inspect(op.get_bind()).has_table(name):
        return
    op.create_table(name, *elements)
    for index in indexes:
        op.create_index(index.name, name, index.columns, unique=index.unique)


def upgrade() -> None:
    _create_registry_tables()
    _create_key_tables()
    _create_stream_tables()
    _create_webhook_tables()


def _create_registry_tables() -> None:
    _create_table(
        "models",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    _create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("weights_sha256", sa.String(length=64), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_name", "version"),
        sa.ForeignKeyConstraint(["model_name"], ["models.name"]),
        indexes=(IndexSpec("ix_model_versions_model_name", ["model_name"]),),
    )
    _create_table(
        "model_aliases",
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_name"], ["models.name"]),
        sa.PrimaryKeyConstraint("model_name", "alias"),
    )


def _create_key_tables() -> None:
    _create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id"),
        indexes=(IndexSpec("ix_api_keys_key_sha256", ["key_sha256"], unique=True),),
    )


def _create_stream_tables() -> None:
    _create_table(
        "streams",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=True),
        sa.Column("pinned_version", sa.Integer(), nullable=True),
        sa.Column("sensitivity", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("last_timestamp", sa.DateTime(), nullable=True),
        sa.Column("point_count", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("state_model_version", sa.Integer(), nullable=True),
        sa.Column("state", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        indexes=(IndexSpec("ix_streams_model_name", ["model_name"]),),
    )
    _create_table(
        "stream_points",
        sa.Column("stream_id", sa.String(length=200), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("expected", sa.Float(), nullable=True),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("is_anomaly", sa.Boolean(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"]),
        sa.PrimaryKeyConstraint("stream_id", "timestamp"),
    )
    _create_table(
        "stream_episodes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("stream_id", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("last_flagged_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("peak_timestamp", sa.DateTime(), nullable=False),
        sa.Column("peak_score", sa.Float(), nullable=False),
        sa.Column("peak_value", sa.Float(), nullable=False),
        sa.Column("peak_expected", sa.Float(), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=True),
        sa.Column("n_points", sa.Integer(), nullable=False),
        sa.Column("n_flagged", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stream_id", "opened_at"),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"]),
        indexes=(IndexSpec("ix_stream_episodes_stream_id", ["stream_id"]),),
    )


def _create_webhook_tables() -> None:
    _create_table(
        "webhook_inbound_secrets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _create_table(
        "webhook_inbound_messages_v2",
        sa.Column("signer", sa.String(length=32), nullable=False),
        sa.Column("msg_id", sa.String(length=256), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("signer", "msg_id"),
        indexes=(IndexSpec("ix_webhook_inbound_messages_v2_created_at", ["created_at"]),),
    )
    _create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("streams", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.Column("disabled_reason", sa.String(length=512), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _create_table(
        "webhook_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("stream_id", sa.String(length=200), nullable=True),
        sa.Column("endpoint_id", sa.String(length=32), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes=(IndexSpec("ix_webhook_messages_event_type", ["event_type"]),),
    )
    _create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "endpoint_id"),
        sa.ForeignKeyConstraint(["message_id"], ["webhook_messages.id"]),
        indexes=(
            IndexSpec("ix_webhook_deliveries_endpoint_id", ["endpoint_id"]),
            IndexSpec("ix_webhook_deliveries_message_id", ["message_id"]),
            IndexSpec("ix_webhook_deliveries_next_attempt_at", ["next_attempt_at"]),
            IndexSpec("ix_webhook_deliveries_status", ["status"]),
        ),
    )
    _create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=40), nullable=False),
        sa.Column("attempted_at", sa.DateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.String(length=1024), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes=(IndexSpec("ix_webhook_attempts_delivery_id", ["delivery_id"]),),
    )


BASELINE_TABLES = (
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_messages",
    "webhook_endpoints",
    "webhook_inbound_messages_v2",
    "webhook_inbound_secrets",
    "stream_episodes",
    "stream_points",
    "streams",
    "api_keys",
    "model_aliases",
    "model_versions",
    "models",
)


def downgrade() -> None:
    """Drop every table, children first (the database is then empty, as before the baseline)."""
    for name in BASELINE_TABLES:
        op.drop_table(name)
