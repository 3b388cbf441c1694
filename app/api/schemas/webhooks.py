"""Bodies of the outbound webhook routes (`/v1/webhooks`), and their construction from the endpoint store's data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app.api.schemas.common import NO_NUL, StrictModel
from app.timestamps import as_aware_utc
from app.webhooks.subscriptions import DeliveryInfo, EndpointInfo

EventType = Literal["anomaly.opened", "anomaly.resolved", "endpoint.disabled"]
StreamRef = Annotated[str, Field(min_length=1, max_length=200), NO_NUL]
Url = Annotated[
    str, Field(min_length=1, max_length=2048, description="http(s) URL receiving the events."), NO_NUL
]
Label = Annotated[str, Field(max_length=512, description="A label."), NO_NUL]


class EndpointCreate(StrictModel):
    url: Url
    events: list[EventType] = Field(min_length=1, max_length=16, description="Event types to receive.")
    streams: list[StreamRef] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=1000,
        description='Stream ids, or ["*"] for all.',
    )
    description: Label = ""


class EndpointUpdate(StrictModel):
    url: Url | None = None
    events: list[EventType] | None = Field(
        None, min_length=1, max_length=16, description="Event types to receive."
    )
    streams: list[StreamRef] | None = Field(
        None, min_length=1, max_length=1000, description='Stream ids, or ["*"] for all.'
    )
    description: Label | None = None
    enabled: bool | None = Field(None, description="true re-enables and replays held deliveries.")


class EndpointOut(BaseModel):
    id: str = Field(description="Endpoint id.")
    url: str = Field(description="Where events are delivered.")
    description: str = Field(description="Operator's note.")
    events: list[str] = Field(description="Event types delivered.")
    streams: list[str] = Field(description="Stream ids, or * for all.")
    enabled: bool = Field(description="False once disabled (410, or too many consecutive failures).")
    disabled_at: datetime | None = Field(description="When it was disabled.")
    disabled_reason: str | None = Field(description="Why it was disabled.")
    consecutive_failures: int = Field(description="Failed messages in a row.")
    created_at: datetime = Field(description="Registration time (UTC).")
    updated_at: datetime = Field(description="Last change (UTC).")

    @classmethod
    def of(cls, info: EndpointInfo) -> EndpointOut:
        stamps = ("disabled_at", "created_at", "updated_at")
        return cls(**(info.__dict__ | {key: as_aware_utc(getattr(info, key)) for key in stamps}))


class EndpointCreated(EndpointOut):
    secret: str = Field(description="Signing secret (`whsec_...`); shown only once.")


class AttemptOut(BaseModel):
    attempted_at: datetime = Field(description="When the attempt was made (UTC).")
    status_code: int | None = Field(description="HTTP status the endpoint answered; null without an answer.")
    latency_ms: float = Field(description="Time to the answer (or the failure) in milliseconds.")
    error: str | None = Field(description="Why the attempt failed, when it did.")
    success: bool = Field(description="The endpoint accepted the message.")


class DeliveryOut(BaseModel):
    id: str = Field(description="Delivery id (`dlv_...`).")
    message_id: str = Field(description="The webhook-id, the same on every attempt.")
    event_type: str = Field(description="Event type of the message.")
    status: Literal["pending", "held", "succeeded", "failed"] = Field(
        description="Where the delivery stands."
    )
    next_attempt_at: datetime | None = Field(description="When the next attempt is due, if one is.")
    created_at: datetime = Field(description="When the message was queued (UTC).")
    attempts: list[AttemptOut] = Field(description="Every attempt, oldest first.")

    @classmethod
    def of(cls, info: DeliveryInfo) -> DeliveryOut:
        attempts = [
            AttemptOut(**(attempt.__dict__ | {"attempted_at": as_aware_utc(attempt.attempted_at)}))
            for attempt in info.attempts
        ]
        return cls.model_validate(
            {
                "id": info.id,
                "message_id": info.message_id,
                "event_type": info.event_type,
                "status": info.status,
                "next_attempt_at": as_aware_utc(info.next_attempt_at),
                "created_at": as_aware_utc(info.created_at),
                "attempts": attempts,
            }
        )


class QueuedOut(BaseModel):
    message_id: str = Field(description="The webhook-id of the queued message.")
    delivery_id: str = Field(description="Delivery id (`dlv_...`).")
    status: Literal["pending", "held"] = Field(description="held while the endpoint is disabled.")
