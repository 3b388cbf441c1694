"""Bodies of the stream routes (`/v1/streams`), and their construction from the streams service's results."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.anomaly import AlarmEvent, Episode
from app.anomaly.points import ScoredPoint
from app.api.schemas.common import (
    FiniteFloat,
    ModelRef,
    StrictModel,
    VersionNumber,
    check_range,
)
from app.streams.service import StreamInfo
from app.timestamps import as_aware_utc, from_state_iso, to_naive_utc

MAX_STREAM_POINTS = 10_000


class StreamConfigRequest(StrictModel):
    model: str = Field(min_length=1, max_length=64, description="Registered model that scores the stream.")
    alias: str | None = Field(
        None, max_length=64, description="Alias to follow; default: the default version."
    )
    version: VersionNumber | None = Field(None, description="Pin a version instead of an alias.")
    sensitivity: FiniteFloat = Field(
        0.5, ge=0, le=1, description="0..1; false-alarm rate 10^(3*sensitivity-4)."
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

    @classmethod
    def of(cls, point: ScoredPoint) -> StreamPointOut:
        return cls(**(point.__dict__ | {"timestamp": as_aware_utc(point.timestamp)}))


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

    @classmethod
    def of(cls, episode: Episode) -> EpisodeOut:
        """A stream's episode (state ISO timestamps, naive UTC) as the API shows it (aware UTC)."""
        resolved = episode.resolved_at
        return cls(
            started_at=as_aware_utc(from_state_iso(episode.started_at)),
            opened_at=as_aware_utc(from_state_iso(episode.opened_at)),
            last_flagged_at=as_aware_utc(from_state_iso(episode.last_flagged_at)),
            resolved_at=None if resolved is None else as_aware_utc(from_state_iso(resolved)),
            peak_timestamp=as_aware_utc(from_state_iso(episode.peak_timestamp)),
            peak_score=episode.peak_score,
            peak_value=episode.peak_value,
            peak_expected=episode.peak_expected,
            direction=episode.direction,
            n_points=episode.n_points,
            n_flagged=episode.n_flagged,
        )


class AlarmEventOut(BaseModel):
    kind: Literal["opened", "resolved"] = Field(description="What happened to the episode.")
    episode: EpisodeOut = Field(description="The episode at that point.")

    @classmethod
    def of(cls, event: AlarmEvent) -> AlarmEventOut:
        return cls(kind=event.kind, episode=EpisodeOut.of(event.episode))


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

    @classmethod
    def of(cls, info: StreamInfo) -> StreamOut:
        return cls(
            id=info.id,
            model=info.model,
            alias=info.alias,
            version=info.version,
            sensitivity=info.sensitivity,
            created_at=as_aware_utc(info.created_at),
            updated_at=as_aware_utc(info.updated_at),
            last_timestamp=as_aware_utc(info.last_timestamp),
            point_count=info.point_count,
            state_model_version=info.state_model_version,
            open_alarm=None if info.open_episode is None else EpisodeOut.of(info.open_episode),
        )


class AppendResponse(BaseModel):
    stream: str = Field(description="Stream id.")
    model: ModelRef = Field(description="The model version that scored the points.")
    points: list[StreamPointOut] = Field(description="One entry per appended point, in order.")
    events: list[AlarmEventOut] = Field(description="Alarm episodes opened or resolved by these points.")
