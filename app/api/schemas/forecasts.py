"""Bodies of `POST /v1/models/{name}/forecast`, `POST /v1/models/{name}/detect` and `POST /v1/detect`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, Field, field_validator, model_validator

from app.anomaly.detector import DEFAULT_LEARNING_POINTS, MAX_LEARNING_POINTS, MIN_LEARNING_POINTS
from app.anomaly.points import Sampling
from app.api.schemas.common import (
    MAX_POINTS,
    MAX_SERIES,
    NUMBERS_ONLY,
    FiniteFloat,
    ModelRef,
    StrictModel,
    check_increasing,
    check_range,
)
from app.timestamps import to_naive_utc


class SeriesId(StrictModel):
    id: str = Field("series", min_length=1, max_length=200, description="Caller's name for the series.")


class SeriesPayload(SeriesId):
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
        check_lengths(self.id, len(self.values), self.timestamps)
        return self


class DetectSeriesPayload(SeriesId):
    """A series to score: readings as they arrived (nulls, repeated and late stamps are input, not errors)."""

    values: list[FiniteFloat | None] = Field(
        min_length=1,
        max_length=MAX_POINTS,
        description="Observed values in arrival order; null marks a missing reading (answered unscored).",
    )
    timestamps: list[datetime] | None = Field(
        None,
        description="ISO 8601 time of each value (UTC if no offset); optional. A repeated stamp (duplicate) or "
        "one earlier than the previous reading (late) is answered unscored, not refused.",
    )

    @field_validator("timestamps")
    @classmethod
    def _normalise_timestamps(cls, stamps: list[datetime] | None) -> list[datetime] | None:
        if stamps is None:
            return None
        naive = [to_naive_utc(stamp) for stamp in stamps]
        check_range(naive, "timestamps")
        return naive

    @model_validator(mode="after")
    def _lengths_match(self) -> DetectSeriesPayload:
        check_lengths(self.id, len(self.values), self.timestamps)
        return self


def check_lengths(series_id: str, values: int, timestamps: list[datetime] | None) -> None:
    if timestamps is not None and len(timestamps) != values:
        raise ValueError(
            f"series {series_id!r}: {values} values but {len(timestamps)} timestamps; "
            "send one timestamp per value"
        )


Series = TypeVar("Series", bound=SeriesId)


def check_unique_ids(series: list[Series]) -> list[Series]:
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
    horizon: Annotated[int, Field(ge=1, le=10_000), NUMBERS_ONLY] | None = Field(
        None,
        description="Steps to forecast; default: the model's (trained) horizon. Longer horizons, up to 10 times "
        "it, are forecast by feeding the model's own forecasts back as inputs (the answer says `recursive`).",
    )
    levels: list[Annotated[FiniteFloat, Field(gt=0, lt=100)]] = Field(
        default_factory=lambda: [80.0, 95.0],
        max_length=20,
        description="Central prediction-interval levels in percent.",
    )

    _unique = field_validator("series")(check_unique_ids)


class IntervalPayload(BaseModel):
    level: float = Field(description="Interval level in percent.")
    lower: list[float] = Field(description="Lower bound per step.")
    upper: list[float] = Field(description="Upper bound per step.")


class CalibrationPayload(BaseModel):
    intervals: Literal["online", "training"] = Field(
        description="online: corrected from the actuals fed for this series (POST .../actuals); training: the "
        "conformal calibration made at training time."
    )
    observations: int = Field(description="Actuals the online calibration has folded in (0 for training).")


class SeriesForecastPayload(BaseModel):
    id: str = Field(description="Series id from the request.")
    timestamps: list[datetime] | None = Field(
        None, description="Time of each forecast step, if inputs had them."
    )
    mean: list[float] = Field(description="Point forecast per step (the predictive median).")
    intervals: list[IntervalPayload] = Field(description="Calibrated central prediction intervals.")
    calibration: CalibrationPayload = Field(
        description="Which calibration the intervals carry: online (from actuals fed back) or training."
    )


class ForecastResponse(BaseModel):
    model: ModelRef = Field(description="The model version that produced the forecasts.")
    trained_horizon: int = Field(description="Steps the model forecasts at once (its trained horizon).")
    recursive: bool = Field(
        description="More steps than `trained_horizon` were asked for: the later ones come from feeding the "
        "model's median forecasts back as inputs, and their intervals are widened approximations."
    )
    recursive_from_step: int | None = Field(
        description="The first step (1-based) forecast from fed-back forecasts; null when not recursive."
    )
    forecasts: list[SeriesForecastPayload] = Field(description="One forecast per input series, in order.")


class DetectRequest(StrictModel):
    series: list[DetectSeriesPayload] = Field(
        min_length=1, max_length=MAX_SERIES, description="Series to score."
    )
    sensitivity: FiniteFloat = Field(
        0.5,
        ge=0,
        le=1,
        description="0..1; the expected false-alarm rate on normal points is 10^(3*sensitivity-4) "
        "(0.5: about 3 in 1000; 1: 1 in 10; 0: 1 in 10000).",
    )
    learning_points: (
        Annotated[int, Field(ge=MIN_LEARNING_POINTS, le=MAX_LEARNING_POINTS), NUMBERS_ONLY] | None
    ) = Field(
        None,
        description=f"Readings the detector learns from before it scores (default {DEFAULT_LEARNING_POINTS}); "
        "every series needs more readings than this.",
    )

    _unique = field_validator("series")(check_unique_ids)


class DetectedPoint(BaseModel):
    index: int = Field(description="Position of the point in the input series.")
    timestamp: datetime | None = Field(None, description="Timestamp of the point, if given.")
    value: float | None = Field(description="Observed value; null for a missing reading.")
    expected: float | None = Field(description="One-step-ahead forecast; null while learning or unscored.")
    lower: float | None = Field(description="Lower edge of the forecast band.")
    upper: float | None = Field(description="Upper edge of the forecast band.")
    score: float | None = Field(
        description="Anomaly score in [0, 1]; null while the detector learns and for duplicate, late and "
        "missing readings."
    )
    is_anomaly: bool = Field(
        description="Flagged at this sensitivity: the score is rarer than the false-alarm rate `alpha`."
    )
    direction: Literal["up", "down"] | None = Field(description="Side of the forecast an anomaly lies on.")
    sampling: Sampling = Field(
        description="How the reading's timing was handled: regular, gap (band widened), reanchored (after a "
        "long gap), duplicate (repeated stamp: the first is kept), late (earlier than the previous reading) "
        "or missing (null value)."
    )


class SeriesDetection(BaseModel):
    id: str = Field(description="Series id from the request.")
    anomalies: int = Field(description="Number of flagged points.")
    points: list[DetectedPoint] = Field(description="One entry per input point.")


class DetectResponse(BaseModel):
    model: ModelRef | None = Field(
        description="The model version whose forecasts gave the expected values; null for `POST /v1/detect` "
        "(the detector's self-learned forecaster)."
    )
    sensitivity: float = Field(description="Sensitivity used.")
    alpha: float = Field(description="Target false-alarm rate per normal point implied by the sensitivity.")
    learning_points: int = Field(description="Readings each series' detector learned from before scoring.")
    results: list[SeriesDetection] = Field(description="One result per input series, in order.")
