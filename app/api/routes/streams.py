"""Streams kept by the server: configure a stream, append points (scored incrementally), read alarms."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, Field, field_validator

from app.api.auth import ReadAccess, WriteAccess
from app.api.schemas import (
    MAX_VERSION,
    FiniteFloat,
    ModelRef,
    StrictModel,
    check_range,
    clamp_to_naive_utc,
    to_naive_utc,
)
from app.streams.scoring import ScoredPoint
from app.streams.service import EpisodeInfo, StreamInfo, StreamService

router = APIRouter(prefix="/v1/streams", tags=["streams"])

MAX_STREAM_POINTS = 10_000
StreamId = Annotated[str, Path(min_length=1, max_length=200, description="Caller's id of the stream.")]


def get_streams(request: Request) -> StreamService:
    return request.app.state.services.streams


# -------------------------------------------------------------------- schemas
class StreamConfigRequest(StrictModel):
    model: str = Field(min_length=1, max_length=64, description="Registered model that scores the stream.")
    alias: str | None = Field(
        None, max_length=64, description="Alias to follow; default: the default version."
    )
    version: int | None = Field(None, ge=1, le=MAX_VERSION, description="Pin a version instead of an alias.")
    sensitivity: float = Field(
        0.5, ge=0, le=1, allow_inf_nan=False, description="0..1; false-alarm rate 10^(3*sensitivity-4)."
    )


class StreamPointIn(StrictModel):
    timestamp: datetime = Field(description="ISO 8601 time of the value (UTC if no offset).")
    value: FiniteFloat = Field(description="Observed value.")

    @field_validator("timestamp")
    @classmethod
    def _naive_utc(cls, stamp: datetime) -> datetime:
        naive = to_naive_utc(stamp)
        check_range([naive], "timestamp")
        return naive


class AppendRequest(StrictModel):
    points: list[StreamPointIn] = Field(
        min_length=1,
        max_length=MAX_STREAM_POINTS,
        description="New points, oldest first, after the last one.",
    )


class StreamPointOut(BaseModel):
    index: int = Field(description="Position of the point in the stream (0 = first point ever appended).")
    timestamp: datetime = Field(description="Timestamp of the point (UTC).")
    value: float = Field(description="Observed value.")
    expected: float | None = Field(
        description="Lead-1 forecast (median) made before the point; null in history."
    )
    lower: float | None = Field(description="Lower edge of the forecast's 80% band.")
    upper: float | None = Field(description="Upper edge of the forecast's 80% band.")
    score: float | None = Field(
        description="Calibrated anomaly score in [0, 1]; null while the history fills."
    )
    is_anomaly: bool = Field(description="True when score >= 1 - alpha.")
    direction: Literal["up", "down"] | None = Field(description="Side of the forecast an anomaly lies on.")


class EpisodeOut(BaseModel):
    started_at: datetime = Field(description="First flagged point of the run that opened the alarm.")
    opened_at: datetime = Field(description="Point at which the alarm was raised.")
    last_flagged_at: datetime = Field(description="Latest flagged point of the episode.")
    resolved_at: datetime | None = Field(description="Point that resolved it; null while open.")
    peak_timestamp: datetime = Field(description="Highest-scoring point.")
    peak_score: float = Field(description="Its calibrated score.")
    peak_value: float = Field(description="Its observed value.")
    peak_expected: float | None = Field(description="Its forecast median.")
    direction: Literal["up", "down"] | None = Field(description="Side of the forecast at the peak.")
    n_points: int = Field(description="Points from started_at on.")
    n_flagged: int = Field(description="Flagged points among them.")


class AlarmEventOut(BaseModel):
    kind: Literal["opened", "resolved"] = Field(description="What happened to the episode.")
    episode: EpisodeOut = Field(description="The episode at that point.")


class StreamOut(BaseModel):
    id: str = Field(description="Stream id.")
    model: str = Field(description="Model name.")
    alias: str | None = Field(description="Alias followed, if any.")
    version: int | None = Field(description="Pinned version, if any.")
    sensitivity: float = Field(description="Sensitivity in [0, 1].")
    created_at: datetime = Field(description="Creation time (UTC).")
    updated_at: datetime = Field(description="Last change (UTC).")
    last_timestamp: datetime | None = Field(description="Timestamp of the last stored point.")
    point_count: int = Field(description="Points stored so far.")
    state_model_version: int | None = Field(description="Model version the scoring state was built with.")
    open_alarm: EpisodeOut | None = Field(description="The open alarm episode, if any.")


class AppendResponse(BaseModel):
    stream: str = Field(description="Stream id.")
    model: ModelRef = Field(description="The model version that scored the points.")
    points: list[StreamPointOut] = Field(description="One entry per appended point, in order.")
    events: list[AlarmEventOut] = Field(description="Alarm episodes opened or resolved by these points.")


# -------------------------------------------------------------------- conversion
def _utc(stamp: datetime | None) -> datetime | None:
    return None if stamp is None else stamp.replace(tzinfo=UTC)


def episode_out(episode: EpisodeInfo) -> EpisodeOut:
    data = episode.__dict__ | {
        key: _utc(getattr(episode, key))
        for key in ("started_at", "opened_at", "last_flagged_at", "resolved_at", "peak_timestamp")
    }
    return EpisodeOut(**data)


def stream_out(info: StreamInfo) -> StreamOut:
    return StreamOut(
        id=info.id,
        model=info.model,
        alias=info.alias,
        version=info.version,
        sensitivity=info.sensitivity,
        created_at=_utc(info.created_at),  # type: ignore[arg-type]
        updated_at=_utc(info.updated_at),  # type: ignore[arg-type]
        last_timestamp=_utc(info.last_timestamp),
        point_count=info.point_count,
        state_model_version=info.state_model_version,
        open_alarm=None if info.open_episode is None else episode_out(info.open_episode),
    )


def point_out(point: ScoredPoint) -> StreamPointOut:
    return StreamPointOut(**(point.__dict__ | {"timestamp": _utc(point.timestamp)}))


# -------------------------------------------------------------------- routes
StreamsDep = Annotated[StreamService, Depends(get_streams)]


@router.put("/{stream_id}", response_model=StreamOut)
async def put_stream(
    stream_id: StreamId, body: StreamConfigRequest, streams: StreamsDep, response: Response, _: WriteAccess
) -> StreamOut:
    """Create a stream, or change its model binding / sensitivity (stored points are kept)."""
    info, created = await streams.upsert(stream_id, body.model, body.alias, body.version, body.sensitivity)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return stream_out(info)


@router.post("/{stream_id}/points", response_model=AppendResponse)
async def append_points(
    stream_id: StreamId, body: AppendRequest, streams: StreamsDep, _: WriteAccess
) -> AppendResponse:
    """Append points: each is scored against the forecast made before it; stored before the reply."""
    result = await streams.append(stream_id, [(point.timestamp, point.value) for point in body.points])
    return AppendResponse(
        stream=stream_id,
        model=ModelRef(name=result.model_name, version=result.model_version),
        points=[point_out(point) for point in result.points],
        events=[AlarmEventOut(kind=kind, episode=episode_out(episode)) for kind, episode in result.events],  # type: ignore[arg-type]
    )


@router.get("/{stream_id}", response_model=StreamOut)
async def read_stream(stream_id: StreamId, streams: StreamsDep, _: ReadAccess) -> StreamOut:
    """Configuration, last timestamp, point count and the open alarm of a stream."""
    return stream_out(await streams.get(stream_id))


@router.get("/{stream_id}/anomalies", response_model=list[EpisodeOut])
async def list_stream_anomalies(
    stream_id: StreamId,
    streams: StreamsDep,
    _: ReadAccess,
    since: Annotated[
        datetime | None, Query(description="Only episodes open or resolved at/after this time (UTC).")
    ] = None,
) -> list[EpisodeOut]:
    """Alarm episodes of the stream, oldest first."""
    episodes = await streams.anomalies(stream_id, None if since is None else clamp_to_naive_utc(since))
    return [episode_out(episode) for episode in episodes]


@router.delete("/{stream_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_stream(stream_id: StreamId, streams: StreamsDep, _: WriteAccess) -> Response:
    """Delete the stream with its points and episodes."""
    await streams.delete(stream_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
