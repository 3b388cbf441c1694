"""Inbound webhook: `POST /v1/hooks/points` appends points to one or many streams in one transaction.

Authenticated by a Standard Webhooks signature (any active inbound secret) when webhook-* headers are
present, otherwise by an API key with role write (`app.api.deps.authenticate_hook`). The signature check,
idempotency by webhook-id and the one-transaction append are the webhooks service's (`app.webhooks.ingest`);
this route parses the body and shapes the answer.
"""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.deps import HookAuth, PointIngestDep
from app.api.schemas.hooks import (
    HOOK_REQUEST_SCHEMA,
    HookPointOut,
    HookPointsRequest,
    HookPointsResponse,
    HookStreamOut,
)
from app.api.schemas.streams import AlarmEventOut, AlertsQuery, StreamPointOut, model_ref
from app.streams.service import StagedAppend

router = APIRouter(prefix="/v1/hooks", tags=["hooks"])

REPLAYED_HEADER = "Webhook-Replayed"


def parse_request(raw: bytes) -> HookPointsRequest:
    try:
        return HookPointsRequest.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)]
        ) from None


def build_response(body: HookPointsRequest, staged: list[StagedAppend]) -> HookPointsResponse:
    by_stream = {item.stream_id: item for item in staged}
    seen: dict[str, int] = defaultdict(int)
    points = []
    for point in body.points:
        scored = by_stream[point.stream].points[seen[point.stream]]
        seen[point.stream] += 1
        points.append(HookPointOut(stream=point.stream, **StreamPointOut.of(scored).model_dump()))
    streams = [
        HookStreamOut(
            stream=item.stream_id,
            model=model_ref(item.model_name, item.model_version),
            events=[AlarmEventOut.of(event) for event in item.events],
        )
        for item in staged
    ]
    return HookPointsResponse(points=points, streams=streams)


@router.post(
    "/points",
    response_model=HookPointsResponse,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": HOOK_REQUEST_SCHEMA}}}
    },
)
async def receive_points(
    request: Request, message_id: HookAuth, ingest: PointIngestDep, alerts: AlertsQuery = True
) -> Response:
    """Append points to one or many streams: all stored, in order, in one transaction, or none.

    Send Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`, signed with an
    inbound secret from `tswatch hooks secret create`) or `Authorization: Bearer <write key>`."""
    body = parse_request(await request.body())
    points = [(point.stream, point.timestamp, point.value) for point in body.points]
    result = await ingest.ingest(
        points,
        message_id,
        render=lambda staged: build_response(body, staged).model_dump_json(),
        alerts=alerts,
    )
    headers = {REPLAYED_HEADER: "true"} if result.replayed else None
    return Response(result.body, result.status, headers=headers, media_type="application/json")
