"""Outbound webhooks (role admin): endpoints, their delivery log, test pings and redelivery."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.api.auth import AdminAccess
from app.api.schemas import StrictModel
from app.webhooks.subscriptions import DeliveryInfo, EndpointChanges, EndpointInfo, EndpointStore

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

EventType = Literal["anomaly.opened", "anomaly.resolved", "endpoint.disabled"]
StreamRef = Annotated[str, Field(min_length=1, max_length=200)]
Url = Annotated[str, Field(min_length=1, max_length=2048, description="http(s) URL receiving the events.")]
EndpointId = Annotated[str, Path(min_length=1, max_length=64, description="Endpoint id (`wh_...`).")]
DeliveryId = Annotated[str, Path(min_length=1, max_length=64, description="Delivery id (`dlv_...`).")]


def get_endpoints(request: Request) -> EndpointStore:
    return request.app.state.services.webhooks.endpoints


EndpointsDep = Annotated[EndpointStore, Depends(get_endpoints)]


# -------------------------------------------------------------------- schemas
class EndpointCreate(StrictModel):
    url: Url
    events: list[EventType] = Field(min_length=1, max_length=16, description="Event types to receive.")
    streams: list[StreamRef] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=1000,
        description='Stream ids, or ["*"] for all.',
    )
    description: str = Field("", max_length=512, description="A label.")


class EndpointUpdate(StrictModel):
    url: Url | None = None
    events: list[EventType] | None = Field(None, min_length=1, max_length=16)
    streams: list[StreamRef] | None = Field(None, min_length=1, max_length=1000)
    description: str | None = Field(None, max_length=512)
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


class EndpointCreated(EndpointOut):
    secret: str = Field(description="Signing secret (`whsec_...`); shown only once.")


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None
    success: bool


class DeliveryOut(BaseModel):
    id: str
    message_id: str = Field(description="The webhook-id, the same on every attempt.")
    event_type: str
    status: Literal["pending", "held", "succeeded", "failed"]
    next_attempt_at: datetime | None
    created_at: datetime
    attempts: list[AttemptOut]


class QueuedOut(BaseModel):
    message_id: str
    delivery_id: str
    status: Literal["pending", "held"]


def _utc(stamp: datetime | None) -> datetime | None:
    return None if stamp is None else stamp.replace(tzinfo=UTC)


def endpoint_out(info: EndpointInfo) -> EndpointOut:
    data = info.__dict__ | {
        key: _utc(getattr(info, key)) for key in ("disabled_at", "created_at", "updated_at")
    }
    return EndpointOut(**data)


def delivery_out(info: DeliveryInfo) -> DeliveryOut:
    attempts = [
        AttemptOut(**(attempt.__dict__ | {"attempted_at": _utc(attempt.attempted_at)}))
        for attempt in info.attempts
    ]
    return DeliveryOut(
        id=info.id,
        message_id=info.message_id,
        event_type=info.event_type,
        status=info.status,  # type: ignore[arg-type]
        next_attempt_at=_utc(info.next_attempt_at),
        created_at=_utc(info.created_at),  # type: ignore[arg-type]
        attempts=attempts,
    )


# -------------------------------------------------------------------- routes
@router.post("", response_model=EndpointCreated, status_code=status.HTTP_201_CREATED)
async def create_endpoint(body: EndpointCreate, endpoints: EndpointsDep, _: AdminAccess) -> EndpointCreated:
    """Register an endpoint; the URL must pass the SSRF policy (422 says why not). Returns its secret once."""
    info, secret = await run_in_threadpool(
        endpoints.create, body.url, list(body.events), body.streams, body.description
    )
    return EndpointCreated(**endpoint_out(info).model_dump(), secret=secret)


@router.get("", response_model=list[EndpointOut])
async def list_endpoints(endpoints: EndpointsDep, _: AdminAccess) -> list[EndpointOut]:
    """Every endpoint, oldest first (secrets are never listed)."""
    return [endpoint_out(info) for info in await run_in_threadpool(endpoints.list)]


@router.get("/{endpoint_id}", response_model=EndpointOut)
async def read_endpoint(endpoint_id: EndpointId, endpoints: EndpointsDep, _: AdminAccess) -> EndpointOut:
    """One endpoint, with why and when it was disabled, if it is."""
    return endpoint_out(await run_in_threadpool(endpoints.get, endpoint_id))


@router.patch("/{endpoint_id}", response_model=EndpointOut)
async def update_endpoint(
    endpoint_id: EndpointId, body: EndpointUpdate, endpoints: EndpointsDep, _: AdminAccess
) -> EndpointOut:
    """Change an endpoint; `{"enabled": true}` re-enables it and replays the deliveries held back."""
    changes = EndpointChanges(
        url=body.url,
        description=body.description,
        events=None if body.events is None else list(body.events),
        streams=body.streams,
        enabled=body.enabled,
    )
    return endpoint_out(await run_in_threadpool(endpoints.update, endpoint_id, changes))


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_endpoint(endpoint_id: EndpointId, endpoints: EndpointsDep, _: AdminAccess) -> Response:
    """Remove the endpoint with its deliveries and their log."""
    await run_in_threadpool(endpoints.delete, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{endpoint_id}/test", response_model=QueuedOut, status_code=status.HTTP_202_ACCEPTED)
async def test_endpoint(endpoint_id: EndpointId, endpoints: EndpointsDep, _: AdminAccess) -> QueuedOut:
    """Queue a signed `ping` event for this endpoint (held while the endpoint is disabled)."""
    message_id, delivery_id, state = await run_in_threadpool(endpoints.ping, endpoint_id)
    return QueuedOut(message_id=message_id, delivery_id=delivery_id, status=state)  # type: ignore[arg-type]


@router.get("/{endpoint_id}/deliveries", response_model=list[DeliveryOut])
async def list_deliveries(
    endpoint_id: EndpointId,
    endpoints: EndpointsDep,
    _: AdminAccess,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most deliveries returned, newest first.")] = 100,
) -> list[DeliveryOut]:
    """Deliveries to this endpoint, newest first, each with every attempt (time, status, latency, error)."""
    return [delivery_out(info) for info in await run_in_threadpool(endpoints.deliveries, endpoint_id, limit)]


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    response_model=QueuedOut,
    status_code=status.HTTP_202_ACCEPTED,
)
async def redeliver(
    endpoint_id: EndpointId, delivery_id: DeliveryId, endpoints: EndpointsDep, _: AdminAccess
) -> QueuedOut:
    """Send the message again (same webhook-id, fresh signature) with a fresh retry budget."""
    message_id, state = await run_in_threadpool(endpoints.redeliver, endpoint_id, delivery_id)
    return QueuedOut(message_id=message_id, delivery_id=delivery_id, status=state)  # type: ignore[arg-type]
