"""Webhook tables: inbound secrets and processed message ids, outbound endpoints, the outbox of messages,
one delivery per (message, endpoint) and one row per delivery attempt."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.base import Base
from app.timestamps import utc_now


class InboundSecretRow(Base):
    """A secret senders sign inbound webhooks with. Kept in plaintext: HMAC verification needs the key."""

    __tablename__ = "webhook_inbound_secrets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class InboundMessageRow(Base):
    """An inbound webhook, keyed by (signer, webhook-id): claimed while processed, then kept with the response
    it got (idempotency) until pruned (`app.webhooks.inbound.RETENTION` after `created_at`).

    `_v2`: the first version (`webhook_inbound_messages`, keyed by the webhook-id alone) is left unused in
    databases created before; `create_all` cannot change an existing table's primary key."""

    __tablename__ = "webhook_inbound_messages_v2"
    MSG_ID_LENGTH = (
        256  # the longest webhook-id kept (longer ones are refused: PostgreSQL enforces the length)
    )

    # The primary key is the unique constraint.
    signer: Mapped[str] = mapped_column(String(32), primary_key=True)  # the verifying inbound secret's id
    msg_id: Mapped[str] = mapped_column(String(MSG_ID_LENGTH), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # "processing" | "done"
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)  # first claim; prune by it
    claimed_at: Mapped[datetime] = mapped_column(default=utc_now)  # renewed when a stale claim is taken over
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)


class EndpointRow(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(512), default="")
    events: Mapped[str] = mapped_column(Text)  # JSON list of event types
    streams: Mapped[str] = mapped_column(Text)  # JSON list of stream ids, or ["*"]
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(512), nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class MessageRow(Base):
    """The outbox: one event, written in the transaction that caused it; `id` is the webhook-id."""

    __tablename__ = "webhook_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    stream_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    endpoint_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # endpoint.disabled / ping
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body sent on every attempt
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class DeliveryRow(Base):
    """One message to one endpoint. status: pending | held (endpoint disabled) | succeeded | failed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("message_id", "endpoint_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("webhook_messages.id"), index=True)
    endpoint_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # attempts in the current round
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)  # also the lease while an attempt runs
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class AttemptRow(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(40), index=True)
    attempted_at: Mapped[datetime] = mapped_column()
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    success: Mapped[bool] = mapped_column(Boolean, default=False)
