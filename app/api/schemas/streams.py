"""Bodies of the stream routes (`/v1/streams`), and their construction from the streams service's results."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field, field_validator

from app.anomaly import AlarmEvent, Episode
from app.anomaly.detector import MAX_LEARNING_POINTS, MIN_LEARNING_POINTS
from app.anomaly.points import Sampling, ScoredPoint
from app.api.schemas.common import (
    FiniteFloat,
    ModelRef,
    StrictModel,
    VersionNumber,
    check_range,
)
from app.streams.queries import StreamSummary
from app.streams.service import AppendResult, StreamInfo
from app.timestamps import as_aware_utc, from_state_iso, to_naive_utc

MAX_STREAM_POINTS = 10_000

AlertsQuery = Annotated[
    bool,
    Query(
        description="false: store the points and their alarms but send no webhooks for them (backfilling "
        "history). Webhooks are sent only when this and the stream's `alerts` option are both true."
    ),
]


class StreamConfigRequest(StrictModel):
    model: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Registered model whose forecasts the stream is scored against; absent or null: a "
        "self-learning stream (it learns its own forecaster from its first points).",
    )
    alias: str | None = Field(
        None, max_length=64, description="Alias of the model to follow; default: the default version."
    )
    version: VersionNumber | None = Field(None, description="Pin a version of the model instead of an alias.")
    sensitivity: FiniteFloat = Field(
        0.5, ge=0, le=1, description="0..1; false-alarm rate 10^(3*sensitivity-4)."
    )
    learning_points: int | None = Field(
        None,
        ge=MIN_LEARNING_POINTS,
        le=MAX_LEARNING_POINTS,
        description="Readings the detector learns from before it scores (default 100). Changing it, or the "
        "model, alias or version, restarts the detector; changing sensitivity or alerts keeps it.",
    )
    alerts: bool = Field(
        True, strict=True, description="False: alarms are stored but no webhooks are sent for this stream."
    )


class StreamPointIn(StrictModel):
    timestamp: datetime = Field(description="ISO 8601 time of the value (UTC if no offset).")
    value: FiniteFloat | None = Field(description="Observed value; null reports a missing reading.")

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
        description="New points, oldest first. Repeated or late timestamps and null values are accepted "
        "(answered with their `sampling` and `score: null`).",
    )


class StreamPointOut(BaseModel):
    index: int = Field(description="Position of the point in the stream (0 = first point ever appended).")
    timestamp: datetime = Field(description="Timestamp of the point (UTC).")
    value: float | None = Field(description="Observed value; null for a missing reading.")
    expected: float | None = Field(
        description="Expected value made before the point (the detector's forecaster, or the model's lead-1 "
        "median); null while learning and for unscored points."
    )
    lower: float | None = Field(description="Lower edge of the expected band.")
    upper: float | None = Field(description="Upper edge of the expected band.")
    score: float | None = Field(
        description="Anomaly score in [0, 1]; null while learning and for duplicate, late or missing readings."
    )
    is_anomaly: bool = Field(description="True when the score reaches the sensitivity's threshold.")
    direction: Literal["up", "down"] | None = Field(
        description="Side of the expected value an anomaly lies on."
    )
    sampling: Sampling = Field(
        description="How the reading's timing was handled: regular, gap (band widened), reanchored (after a "
        "long gap), duplicate (repeated timestamp: the first is kept), late (before the previous reading), "
        "missing (null value). The last three are stored but not scored."
    )

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


class DetectorStatusOut(BaseModel):
    """A stream's detector, as the stream and append answers show it."""

    alerts: bool = Field(description="False: alarms are stored but no webhooks are sent for this stream.")
    point_count: int = Field(description="Points stored so far (every reading, scored or not).")
    state: Literal["learning", "scoring"] = Field(
        description="learning: the detector is still collecting its learning period (scores are null)."
    )
    points_until_ready: int = Field(
        description="Readings still needed before scoring starts (0 once scoring)."
    )
    learning_points: int = Field(description="Readings in the learning period.")
    refits: int = Field(description="Refits of the detector's forecaster after its first fit.")
    last_refit_at: datetime | None = Field(
        description="Timestamp of the reading at which the current weights were fitted (UTC); null while learning."
    )
    weights_age_points: int | None = Field(
        description="Readings scored since the current weights were fitted; null while learning."
    )

    @staticmethod
    def fields_of(info: StreamInfo) -> dict[str, Any]:
        detector = info.detector
        return {
            "alerts": info.alerts,
            "point_count": info.point_count,
            "state": detector.state,
            "points_until_ready": detector.points_until_ready,
            "learning_points": detector.learning_points,
            "refits": detector.refits,
            "last_refit_at": as_aware_utc(detector.last_refit_at),
            "weights_age_points": detector.weights_age_points,
        }


class StreamOut(DetectorStatusOut):
    id: str = Field(description="Stream id.")
    model: str | None = Field(description="Model name; null for a self-learning stream.")
    alias: str | None = Field(description="Alias followed, if any.")
    version: int | None = Field(description="Pinned version, if any.")
    sensitivity: float = Field(description="Sensitivity in [0, 1].")
    created_at: datetime = Field(description="Creation time (UTC).")
    updated_at: datetime = Field(description="Last change (UTC).")
    last_timestamp: datetime | None = Field(description="The newest timestamp received.")
    state_model_version: int | None = Field(
        description="Model version the forecasts were built with; null for a self-learning stream."
    )
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
            state_model_version=info.state_model_version,
            open_alarm=None if info.open_episode is None else EpisodeOut.of(info.open_episode),
            **cls.fields_of(info),
        )


class AppendResponse(DetectorStatusOut):
    stream: str = Field(description="Stream id.")
    model: ModelRef | None = Field(
        description="The model version whose forecasts scored the points; null for a self-learning stream."
    )
    points: list[StreamPointOut] = Field(description="One entry per appended point, in order.")
    events: list[AlarmEventOut] = Field(description="Alarm episodes opened or resolved by these points.")

    @classmethod
    def of(cls, stream_id: str, result: AppendResult) -> AppendResponse:
        return cls(
            stream=stream_id,
            model=model_ref(result.model_name, result.model_version),
            points=[StreamPointOut.of(point) for point in result.points],
            events=[AlarmEventOut.of(event) for event in result.events],
            **cls.fields_of(result.stream),
        )


def model_ref(name: str | None, version: int | None) -> ModelRef | None:
    """The model version that served a stream's points; None for a self-learning stream."""
    return None if name is None or version is None else ModelRef(name=name, version=version)


class StreamSummaryOut(BaseModel):
    id: str = Field(description="Stream id.")
    model: str | None = Field(description="Model name; null for a self-learning stream.")
    alias: str | None = Field(description="Alias followed, if any.")
    version: int | None = Field(description="Pinned version, if any.")
    sensitivity: float = Field(description="Sensitivity in [0, 1].")
    point_count: int = Field(description="Points stored so far.")
    last_timestamp: datetime | None = Field(description="Timestamp of the last point.")
    updated_at: datetime = Field(description="Last change (UTC).")
    state_model_version: int | None = Field(description="Model version that scored the latest points.")
    open_alarms: int = Field(description="Open alarm episodes (0 or 1).")
    episodes: int = Field(description="Alarm episodes ever opened.")

    @classmethod
    def of(cls, summary: StreamSummary) -> StreamSummaryOut:
        stamps = {key: as_aware_utc(getattr(summary, key)) for key in ("last_timestamp", "updated_at")}
        return cls(**(summary.__dict__ | stamps))


class StreamPage(BaseModel):
    streams: list[StreamSummaryOut] = Field(description="Streams of this page, ordered by id.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page (also in the `Link` header); null on the last page."
    )
