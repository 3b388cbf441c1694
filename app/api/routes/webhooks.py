"""Outbound webhooks (role admin): endpoints, their delivery log, test pings and redelivery."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import AdminAccess, EndpointsDep
from app.api.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    decode_cursor,
    encode_cursor,
    link_next,
    page,
)
from app.api.schemas.common import NO_NUL
from app.api.schemas.webhooks import (
    DeliveryOut,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
    EndpointUpdate,
    QueuedOut,
)
from app.concurrency import run_blocking
from app.webhooks.subscriptions import EndpointChanges

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=AuthenticatedRoute)

EndpointId = Annotated[str, Path(min_length=1, max_length=64, description="Endpoint id (`wh_...`)."), NO_NUL]
DeliveryId = Annotated[str, Path(min_length=1, max_length=64, description="Delivery id (`dlv_...`)."), NO_NUL]


@router.post("", response_model=EndpointCreated, status_code=status.HTTP_201_CREATED)
async def create_endpoint(body: EndpointCreate, endpoints: EndpointsDep, _: AdminAccess) -> EndpointCreated:
    """Register an endpoint; the URL must pass the SSRF policy (422 says why not). Returns its secret once."""
    info, secret = await run_blocking(
        endpoints.create, body.url, list(body.events), body.streams, body.description
    )
    return EndpointCreated(**EndpointOut.of(info).model_dump(), secret=secret)


@router.get("", response_model=list[EndpointOut])
async def list_endpoints(endpoints: EndpointsDep, _: AdminAccess) -> list[EndpointOut]:
    """Every endpoint, oldest first (secrets are never listed)."""
    return [EndpointOut.of(info) for info in await run_blocking(endpoints.list)]


@router.get("/{endpoint_id}", response_model=EndpointOut)
async def read_endpoint(endpoint_id: EndpointId, endpoints: EndpointsDep, _: AdminAccess) -> EndpointOut:
    """One endpoint, with why and when it was disabled, if it is."""
    return EndpointOut.of(await run_blocking(endpoints.get, endpoint_id))


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
    return EndpointOut.of(await run_blocking(endpoints.update, endpoint_id, changes))


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_endpoint(endpoint_id: EndpointId, endpoints: EndpointsDep, _: AdminAccess) -> Response:
    """Remove the endpoint with its deliveries and their log."""
    await run_blocking(endpoints.delete, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{endpoint_id}/test", response_model=QueuedOut, status_code=status.HTTP_202_ACCEPTED)
async def test_endpoint(endpoint_id: EndpointId, endpoints: EndpointsDep, _: AdminAccess) -> QueuedOut:
    """Queue a signed `ping` event for this endpoint (held while the endpoint is disabled)."""
    message_id, delivery_id, state = await run_blocking(endpoints.ping, endpoint_id)
    return QueuedOut.model_validate({"message_id": message_id, "delivery_id": delivery_id, "status": state})


@router.get("/{endpoint_id}/deliveries", response_model=list[DeliveryOut])
async def list_deliveries(
    endpoint_id: EndpointId,
    request: Request,
    response: Response,
    endpoints: EndpointsDep,
    _: AdminAccess,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> list[DeliveryOut]:
    """Deliveries to this endpoint, newest first, each with every attempt (time, status, latency, error), a
    page at a time: when older ones follow, the `Link: rel="next"` header holds the next page's URL."""
    after = None
    if cursor is not None:
        created_at, delivery_id = decode_cursor("deliveries", cursor, [datetime, str])
        after = (created_at, str(delivery_id)) if isinstance(created_at, datetime) else None
    found = await run_blocking(endpoints.deliveries, endpoint_id, limit + 1, after)
    deliveries, more = page(found, limit)
    last = deliveries[-1] if deliveries else None
    link_next(
        request, response, encode_cursor("deliveries", [last.created_at, last.id]) if more and last else None
    )
    return [DeliveryOut.of(info) for info in deliveries]


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    response_model=QueuedOut,
    status_code=status.HTTP_202_ACCEPTED,
)
async def redeliver(
    endpoint_id: EndpointId, delivery_id: DeliveryId, endpoints: EndpointsDep, _: AdminAccess
) -> QueuedOut:
    """Send the message again (same webhook-id, fresh signature) with a fresh retry budget."""
    message_id, state = await run_blocking(endpoints.redeliver, endpoint_id, delivery_id)
    return QueuedOut.model_validate({"message_id": message_id, "delivery_id": delivery_id, "status": state})
