"""Bodies of `POST /v1/models/{name}/actuals` (online interval calibration, `app.serving.online_intervals`)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from app.api.schemas.common import MAX_SERIES, ModelRef, StrictModel
from app.api.schemas.forecasts import SeriesPayload, check_unique_ids


class ActualsRequest(StrictModel):
    series: list[SeriesPayload] = Field(
        min_length=1,
        max_length=MAX_SERIES,
        description="Each series' newest actual values with their timestamps (required), oldest first. Values "
        "not newer than the last actual the server holds for the series are ignored.",
    )

    _unique = field_validator("series")(check_unique_ids)


class FedSeriesPayload(BaseModel):
    id: str = Field(description="Series id from the request.")
    accepted: int = Field(description="New actuals stored.")
    ignored: int = Field(description="Actuals not newer than the last one held (seen before).")
    resolved: int = Field(description="(forecast step, actual) pairs folded into the calibration.")
    observations: int = Field(description="Actuals folded into this series' calibration so far.")


class ActualsResponse(BaseModel):
    model: ModelRef = Field(description="The model version whose intervals these actuals calibrate.")
    series: list[FedSeriesPayload] = Field(description="One entry per input series, in order.")
