"""Bodies of the inbound webhook `POST /v1/hooks/points` (points for many streams in one request)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, Field

from app.api.schemas.common import NO_NUL, ModelRef, StrictModel
from app.api.schemas.streams import MAX_STREAM_POINTS, AlarmEventOut, StreamPointIn, StreamPointOut


class HookPoint(StreamPointIn):
    stream: Annotated[
        str,
        Field(min_length=1, max_length=200, description="Stream id (created with PUT /v1/streams)."),
        NO_NUL,
    ]


class HookPointsRequest(StrictModel):
    points: list[HookPoint] = Field(
        min_length=1, max_length=MAX_STREAM_POINTS, description="Points of one or many streams, in order."
    )


class HookPointOut(StreamPointOut):
    stream: str = Field(description="Stream id.")


class HookStreamOut(BaseModel):
    stream: str = Field(description="Stream id.")
    model: ModelRef | None = Field(
        description="The model version whose forecasts scored its points; null for a self-learning stream."
    )
    events: list[AlarmEventOut] = Field(description="Alarm episodes opened or resolved by these points.")


class HookPointsResponse(BaseModel):
    points: list[HookPointOut] = Field(description="One scored entry per point, in request order.")
    streams: list[HookStreamOut] = Field(description="Per stream, in order of first appearance.")


# The body is parsed in the route (after the signature check over the raw bytes), so the OpenAPI document gets
# its schema declared by hand.
_POINT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["stream", "timestamp", "value"],
    "properties": {
        "stream": {"type": "string", "minLength": 1, "maxLength": 200},
        "timestamp": {"type": "string", "format": "date-time"},
        "value": {"type": "number"},
    },
}
HOOK_REQUEST_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["points"],
    "properties": {
        "points": {"type": "array", "minItems": 1, "maxItems": MAX_STREAM_POINTS, "items": _POINT_SCHEMA}
    },
}
