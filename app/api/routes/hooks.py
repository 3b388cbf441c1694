"""Inbound webhook: `POST /v1/hooks/points` appends points to one or many streams in one transaction.

Authenticated by a Standard Webhooks signature (any active inbound secret) when webhook-* headers are
present, otherwise by an API key with role write. The signature is checked over the raw body BEFORE the body
is parsed, so a changed byte answers 401, never 422. Signed requests are idempotent by webhook-id (see
`app.webhooks.inbound`): a repeated id gets the stored response and is processed once.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.auth import PermissionDeniedError, authenticate
from app.api.routes.streams import (
    MAX_STREAM_POINTS,
    AlarmEventOut,
    StreamPointIn,
    StreamPointOut,
    episode_out,
    point_out,
)
from app.api.schemas import ModelRef, StrictModel
from app.errors import TswatchError
from app.registry.keys import Role
from app.streams.service import StagedAppend, event_info
from app.webhooks.inbound import IdempotencyStore, InboundSignatureError, has_webhook_headers, verify_inbound

router = APIRouter(prefix="/v1/hooks", tags=["hooks"])

REPLAYED_HEADER = "Webhook-Replayed"


class SignatureRejectedError(TswatchError):
    status = 401
    title = "Invalid webhook signature"
    slug = "invalid-signature"


# -------------------------------------------------------------------- schemas
class HookPoint(StreamPointIn):
    stream: str = Field(min_length=1, max_length=200, description="Stream id (created with PUT /v1/streams).")


class HookPointsRequest(StrictModel):
    points: list[HookPoint] = Field(min_length=1, max_length=MAX_STREAM_POINTS)


class HookPointOut(StreamPointOut):
    stream: str = Field(description="Stream id.")


class HookStreamOut(BaseModel):
    stream: str = Field(description="Stream id.")
    model: ModelRef = Field(description="The model version that scored its points.")
    events: list[AlarmEventOut] = Field(description="Alarm episodes opened or resolved by these points.")


class HookPointsResponse(BaseModel):
    points: list[HookPointOut] = Field(description="One scored entry per point, in request order.")
    streams: list[HookStreamOut] = Field(description="Per stream, in order of first appearance.")


_POINT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["stream", "timestamp", "value"],
    "properties": {
        "stream": {"type": "string", "minLength": 1, "maxLength": 200},
        "timestamp": {"type": "string", "format": "date-time"},
        "value": {"type": "number"},
    },
}
_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["points"],
    "properties": {
        "points": {"type": "array", "minItems": 1, "maxItems": MAX_STREAM_POINTS, "items": _POINT_SCHEMA}
    },
}


# -------------------------------------------------------------------- authentication
async def authenticate_hook(request: Request) -> str | None:
    """The verified webhook-id for signed requests; None for API-key callers (role write or higher)."""
    body = await request.body()
    if has_webhook_headers(request.headers):
        secrets = request.app.state.services.webhooks.secrets
        active = await run_in_threadpool(secrets.active_secrets)
        try:
            return verify_inbound(active, request.headers, body)
        except InboundSignatureError as error:
            raise SignatureRejectedError(str(error)) from None
    principal = await authenticate(request)
    if not principal.role.allows(Role.WRITE):
        raise PermissionDeniedError(Role.WRITE, principal.role, principal.key_id)
    return None


HookAuth = Annotated[str | None, Depends(authenticate_hook)]


# -------------------------------------------------------------------- processing
def parse_request(raw: bytes) -> HookPointsRequest:
    try:
        return HookPointsRequest.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)]
        ) from None


def group_by_stream(body: HookPointsRequest) -> list[tuple[str, list[tuple[datetime, float]]]]:
    groups: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for point in body.points:
        groups[point.stream].append((point.timestamp, point.value))
    return list(groups.items())


def build_response(body: HookPointsRequest, staged: list[StagedAppend]) -> HookPointsResponse:
    by_stream = {item.stream_id: item for item in staged}
    seen: dict[str, int] = defaultdict(int)
    points = []
    for point in body.points:
        scored = by_stream[point.stream].points[seen[point.stream]]
        seen[point.stream] += 1
        points.append(HookPointOut(stream=point.stream, **point_out(scored).model_dump()))
    streams = [
        HookStreamOut(
            stream=item.stream_id,
            model=ModelRef(name=item.model_name, version=item.model_version),
            events=[
                AlarmEventOut(kind=event.kind, episode=episode_out(event_info(event.episode)))
                for event in item.events
            ],
        )
        for item in staged
    ]
    return HookPointsResponse(points=points, streams=streams)


@router.post(
    "/points",
    response_model=HookPointsResponse,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _REQUEST_SCHEMA}}}
    },
)
async def receive_points(request: Request, msg_id: HookAuth) -> Response:
    """Append points to one or many streams: all stored, in order, in one transaction, or none.

    Send Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`, signed with an
    inbound secret from `tswatch hooks secret create`) or `Authorization: Bearer <write key>`."""
    body = parse_request(await request.body())
    services = request.app.state.services
    idempotency: IdempotencyStore = services.webhooks.idempotency
    if msg_id is not None:
        stored = await idempotency.claim(msg_id)
        if stored is not None:
            headers = {REPLAYED_HEADER: "true"}
            return Response(stored.body, stored.status, headers=headers, media_type="application/json")
    answer: dict[str, str] = {}

    def finish(session: Session, staged: list[StagedAppend]) -> None:
        answer["body"] = build_response(body, staged).model_dump_json()
        if msg_id is not None:
            idempotency.complete(session, msg_id, 200, answer["body"])

    try:
        await services.streams.append_many(group_by_stream(body), in_transaction=finish)
    except BaseException:
        if msg_id is not None:  # nothing was stored: a retry with this id may be processed
            await asyncio.shield(run_in_threadpool(idempotency.release, msg_id))
        raise
    return Response(answer["body"], 200, media_type="application/json")
