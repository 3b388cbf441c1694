"""Bodies of the dashboard's own read-only routes (`/v1/ui`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.anomaly.points import ScoredPoint
from app.api.schemas.streams import StreamSummaryOut
from app.registry.recent import RecentData
from app.timestamps import as_aware_utc


class SessionOut(BaseModel):
    auth_required: bool = Field(description="False on an open (key-less, loopback) server.")
    authenticated: bool = Field(description="The request's key (or open mode) grants access.")
    role: str | None = Field(description="Role of the caller, when authenticated.")
    key_id: str | None = Field(description="Id of the caller's key, when one was sent and accepted.")
    problem: str | None = Field(description="Why the caller is not authenticated, if not.")
    features: dict[str, bool] = Field(description="Optional API groups this server exposes (e.g. webhooks).")
    webhook_routes: list[str] = Field(description="GET paths of the webhooks API, when it is present.")


class RecentDataOut(BaseModel):
    model: str = Field(description="Model name.")
    version: int = Field(description="Version whose manifest the data comes from.")
    series: str = Field(description="Series id in the training data.")
    series_ids: list[str] = Field(description="Series with stored recent values.")
    frequency: str = Field(description="Data frequency (pandas alias).")
    window: int = Field(description="Points the model reads.")
    horizon: int = Field(description="Points the model forecasts.")
    timestamps: list[str] = Field(description="ISO 8601 UTC timestamps, oldest first.")
    values: list[float] = Field(description="Values, oldest first.")

    @classmethod
    def of(cls, name: str, version: int, recent: RecentData) -> RecentDataOut:
        return cls(model=name, version=version, **recent.__dict__)


UiStreamOut = StreamSummaryOut  # the dashboard lists streams as GET /v1/streams does


class UiPointOut(BaseModel):
    index: int = Field(description="Position in the stream.")
    timestamp: datetime = Field(description="Timestamp (UTC).")
    value: float | None = Field(description="Observed value; null for a missing reading.")
    expected: float | None = Field(description="Lead-1 forecast median.")
    lower: float | None = Field(description="Lower edge of the 80% band.")
    upper: float | None = Field(description="Upper edge of the 80% band.")
    score: float | None = Field(description="Calibrated anomaly score.")
    is_anomaly: bool = Field(description="Flagged.")

    @classmethod
    def of(cls, point: ScoredPoint) -> UiPointOut:
        return cls(**(point.__dict__ | {"timestamp": as_aware_utc(point.timestamp)}))
