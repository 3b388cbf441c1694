"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MAX_POINTS = 200_000
MAX_SERIES = 1_000
MAX_VERSION = 2**31 - 1  # beyond any real version; larger numbers overflow the database's integers
# Inside numpy's datetime64[ns] range (1677-09-21 .. 2262-04-11) with room for the forecast horizon.
MIN_TIMESTAMP = datetime(1678, 1, 1)
MAX_TIMESTAMP = datetime(2260, 1, 1)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def to_naive_utc(stamp: datetime) -> datetime:
    """Naive UTC; a ValueError (a 422, not an OverflowError) when the offset moves it past year 1 or 9999."""
    if stamp.tzinfo is None:
        return stamp
    try:
        return stamp.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError(
            f"{stamp.isoformat()} is out of range in UTC; timestamps must lie in "
            f"[{MIN_TIMESTAMP.isoformat()}, {MAX_TIMESTAMP.isoformat()})"
        ) from None


def clamp_to_naive_utc(stamp: datetime) -> datetime:
    """Naive UTC for a bound (a `since` filter): a stamp beyond the calendar in UTC becomes its end."""
    try:
        return to_naive_utc(stamp)
    except ValueError:
        return datetime.min if stamp.year == datetime.min.year else datetime.max


def check_range(stamps: list[datetime], field: str) -> None:
    for index, stamp in enumerate(stamps):
        if not MIN_TIMESTAMP <= stamp < MAX_TIMESTAMP:
            raise ValueError(
                f"{field}: {stamp.isoformat()} at index {index} is out of range; "
                f"timestamps must lie in [{MIN_TIMESTAMP.isoformat()}, {MAX_TIMESTAMP.isoformat()})"
            )


def check_increasing(stamps: list[datetime], field: str) -> None:
    for index in range(1, len(stamps)):
        if stamps[index] == stamps[index - 1]:
            raise ValueError(f"{field}: duplicate timestamp {stamps[index].isoformat()} at index {index}")
        if stamps[index] < stamps[index - 1]:
            raise ValueError(
                f"{field}: timestamps must increase; index {index} ({stamps[index].isoformat()}) "
                f"comes before index {index - 1} ({stamps[index - 1].isoformat()})"
            )


class SeriesPayload(StrictModel):
    id: str = Field("series", min_length=1, max_length=200, description="Caller's name for the series.")
    values: list[FiniteFloat] = Field(
        min_length=1, max_length=MAX_POINTS, description="Observed values, oldest first; finite numbers only."
    )
    timestamps: list[datetime] | None = Field(
        None, description="ISO 8601 time of each value (UTC if no offset), strictly increasing; optional."
    )

    @field_validator("timestamps")
    @classmethod
    def _normalise_timestamps(cls, stamps: list[datetime] | None) -> list[datetime] | None:
        if stamps is None:
            return None
        naive = [to_naive_utc(stamp) for stamp in stamps]
        check_range(naive, "timestamps")
        check_increasing(naive, "timestamps")
        return naive

    @model_validator(mode="after")
    def _lengths_match(self) -> SeriesPayload:
        if self.timestamps is not None and len(self.timestamps) != len(self.values):
            raise ValueError(
                f"series {self.id!r}: {len(self.values)} values but {len(self.timestamps)} timestamps; "
                "send one timestamp per value"
            )
        return self


def check_unique_ids(series: list[SeriesPayload]) -> list[SeriesPayload]:
    seen: set[str] = set()
    for item in series:
        if item.id in seen:
            raise ValueError(f"series id {item.id!r} appears more than once; ids must be unique per request")
        seen.add(item.id)
    return series


class ForecastRequest(StrictModel):
    series: list[SeriesPayload] = Field(
        min_length=1, max_length=MAX_SERIES, description="Series to forecast."
    )
    horizon: int | None = Field(
        None, ge=1, le=10_000, description="Steps to forecast; default and maximum: the model's horizon."
    )
    levels: list[Annotated[float, Field(gt=0, lt=100, allow_inf_nan=False)]] = Field(
        default_factory=lambda: [80.0, 95.0],
        max_length=20,
        description="Central prediction-interval levels in percent.",
    )

    _unique = field_validator("series")(check_unique_ids)


class ModelRef(BaseModel):
    name: str = Field(description="Model name.")
    version: int = Field(description="Version that answered.")


class IntervalPayload(BaseModel):
    level: float = Field(description="Interval level in percent.")
    lower: list[float] = Field(description="Lower bound per step.")
    upper: list[float] = Field(description="Upper bound per step.")


class SeriesForecastPayload(BaseModel):
    id: str = Field(description="Series id from the request.")
    timestamps: list[datetime] | None = Field(
        None, description="Time of each forecast step, if inputs had them."
    )
    mean: list[float] = Field(description="Point forecast per step (the predictive median).")
    intervals: list[IntervalPayload] = Field(description="Calibrated central prediction intervals.")


class ForecastResponse(BaseModel):
    model: ModelRef = Field(description="The model version that produced the forecasts.")
    forecasts: list[SeriesForecastPayload] = Field(description="One forecast per input series, in order.")


class DetectRequest(StrictModel):
    series: list[SeriesPayload] = Field(min_length=1, max_length=MAX_SERIES, description="Series to score.")
    sensitivity: float = Field(
        0.5,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="0..1; the expected false-alarm rate on normal points is 10^(3*sensitivity-4) "
        "(0.5: about 3 in 1000; 1: 1 in 10; 0: 1 in 10000).",
    )

    _unique = field_validator("series")(check_unique_ids)


class DetectedPoint(BaseModel):
    index: int = Field(description="Position of the point in the input series.")
    timestamp: datetime | None = Field(None, description="Timestamp of the point, if given.")
    value: float = Field(description="Observed value.")
    expected: float | None = Field(description="One-step-ahead forecast (median); null without history.")
    lower: float | None = Field(description="Lower edge of the forecast's 80% band.")
    upper: float | None = Field(description="Upper edge of the forecast's 80% band.")
    score: float | None = Field(
        description="Calibrated anomaly score in [0, 1]; null without enough history."
    )
    is_anomaly: bool = Field(description="True when score >= 1 - alpha.")
    direction: Literal["up", "down"] | None = Field(description="Side of the forecast an anomaly lies on.")


class SeriesDetection(BaseModel):
    id: str = Field(description="Series id from the request.")
    anomalies: int = Field(description="Number of flagged points.")
    points: list[DetectedPoint] = Field(description="One entry per input point.")


class DetectResponse(BaseModel):
    model: ModelRef = Field(description="The model version that scored the points.")
    sensitivity: float = Field(description="Sensitivity used.")
    alpha: float = Field(description="Target false-alarm rate per normal point implied by the sensitivity.")
    results: list[SeriesDetection] = Field(description="One result per input series, in order.")


class VersionSummary(BaseModel):
    version: int = Field(description="Version number.")
    created_at: datetime = Field(description="When it was registered (UTC).")
    aliases: list[str] = Field(description="Aliases pointing at this version.")
    metrics: dict[str, Any] = Field(description="Test-split metrics of the model.")
    baselines: dict[str, Any] = Field(description="The same metrics for seasonal naive and random walk.")

    @field_validator("created_at")
    @classmethod
    def _mark_utc(cls, stamp: datetime) -> datetime:
        """The registry stores naive UTC; say so, or the value is not an RFC 3339 date-time."""
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


class ModelSummary(BaseModel):
    name: str = Field(description="Model name.")
    latest_version: int | None = Field(description="Highest version number.")
    aliases: dict[str, int] = Field(description="Alias -> version.")
    versions: list[int] = Field(description="All version numbers.")


class ModelDetail(ModelSummary):
    default_version: int | None = Field(description="Version answering requests without ?version or ?alias.")
    version_details: list[VersionSummary] = Field(description="Every version with its test metrics.")


class VersionDetail(BaseModel):
    name: str = Field(description="Model name.")
    version: int = Field(description="Version number.")
    aliases: list[str] = Field(description="Aliases pointing at this version.")
    manifest: dict[str, Any] = Field(description="Architecture, scaling, data fingerprint, metrics, history.")


class AliasRequest(StrictModel):
    version: int = Field(ge=1, le=MAX_VERSION, description="Version the alias should point to.")


class AliasResponse(BaseModel):
    name: str = Field(description="Model name.")
    alias: str = Field(description="Alias name.")
    version: int = Field(description="Version it points to.")


class HealthResponse(BaseModel):
    status: Literal["ok"] = Field(description="Always ok while the process serves requests.")


class ReadinessResponse(BaseModel):
    status: Literal["ready", "not_ready"] = Field(description="ready when every check passes.")
    checks: dict[str, str] = Field(description="Each check's outcome.")
    models: list[ModelRef] = Field(description="Loaded model versions.")
