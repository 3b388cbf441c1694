"""Request and response bodies of the Azure-compatible univariate endpoints (`/anomalydetector/v1.x/...`).

Field names and meanings are those of Azure Anomaly Detector's univariate REST API (v1.0 and v1.1). Unknown
fields are ignored, as Azure does. A request that fails these checks is answered with Azure's error body and the
code of the offending field (`app.azure.errors.code_for_field`); the series itself is checked by
`app.azure.series.prepare_series`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import NUMBERS_ONLY, FiniteFloat
from app.azure.changepoint import ChangePoints
from app.azure.errors import INVALID_GRANULARITY, AzureError
from app.azure.grid import Granularity
from app.azure.series import ImputeMode, SeriesRequest
from app.azure.univariate import SUGGESTED_WINDOW, UnivariateResult

PositiveInt = Annotated[int, Field(ge=1), NUMBERS_ONLY]
Period = Annotated[int, Field(ge=0), NUMBERS_ONLY]
AzureSensitivity = Annotated[int, Field(ge=0, le=99), NUMBERS_ONLY]
AnomalyRatio = Annotated[float, Field(gt=0, le=0.49, allow_inf_nan=False)]
TrendWindow = Annotated[int, Field(ge=3), NUMBERS_ONLY]
Threshold = Annotated[float, Field(ge=0.01, le=0.99, allow_inf_nan=False)]


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class TimeSeriesPoint(_Body):
    timestamp: datetime | None = Field(None, description="ISO 8601; optional when the granularity is `none`.")
    value: FiniteFloat


class _SeriesBody(_Body):
    series: list[TimeSeriesPoint] = Field(description="At least 12 points, sorted by timestamp.")
    custom_interval: PositiveInt | None = Field(None, alias="customInterval")
    period: Period | None = Field(
        None, description="Validated as Azure does; the detector finds its seasons."
    )

    def series_request(
        self, impute_mode: ImputeMode | None = None, fixed: float | None = None
    ) -> SeriesRequest:
        granularity: Granularity = getattr(self, "granularity", Granularity.NONE)
        return SeriesRequest(
            timestamps=[point.timestamp for point in self.series],
            values=[point.value for point in self.series],
            granularity=granularity,
            custom_interval=self.custom_interval,
            period=self.period,
            impute_mode=impute_mode,
            impute_fixed_value=fixed,
        )


class _DetectBody(_SeriesBody):
    max_anomaly_ratio: AnomalyRatio | None = Field(None, alias="maxAnomalyRatio")
    sensitivity: AzureSensitivity | None = Field(None, description="0-99, default 99 (see the README).")


class DetectRequestV10(_DetectBody):
    """v1.0: the granularity is required and cannot be `none`."""

    granularity: Granularity

    def to_series(self) -> SeriesRequest:
        if self.granularity is Granularity.NONE:
            raise AzureError(INVALID_GRANULARITY, "granularity 'none' is not available in v1.0; use v1.1")
        return self.series_request()


class DetectRequestV11(_DetectBody):
    """v1.1: the granularity is optional (default `none`: timestamps are then ignored) and gaps can be imputed."""

    granularity: Granularity = Granularity.NONE
    impute_mode: ImputeMode | None = Field(None, alias="imputeMode")
    impute_fixed_value: FiniteFloat | None = Field(None, alias="imputeFixedValue")

    def to_series(self) -> SeriesRequest:
        return self.series_request(self.impute_mode, self.impute_fixed_value)


class ChangePointRequest(_SeriesBody):
    granularity: Granularity
    stable_trend_window: TrendWindow | None = Field(None, alias="stableTrendWindow")
    threshold: Threshold | None = Field(None, description="0.01-0.99; lower accepts fewer change points.")

    def to_series(self, allow_none: bool) -> SeriesRequest:
        if self.granularity is Granularity.NONE and not allow_none:
            raise AzureError(INVALID_GRANULARITY, "granularity 'none' is not available in v1.0; use v1.1")
        return self.series_request()


class EntireDetectResponse(_Body):
    period: int
    expected_values: list[float] = Field(alias="expectedValues")
    upper_margins: list[float] = Field(alias="upperMargins")
    lower_margins: list[float] = Field(alias="lowerMargins")
    is_anomaly: list[bool] = Field(alias="isAnomaly")
    is_negative_anomaly: list[bool] = Field(alias="isNegativeAnomaly")
    is_positive_anomaly: list[bool] = Field(alias="isPositiveAnomaly")
    severity: list[float]

    @classmethod
    def of(cls, result: UnivariateResult) -> Self:
        return cls(
            period=result.period,
            expected_values=result.expected,
            upper_margins=result.upper_margins,
            lower_margins=result.lower_margins,
            is_anomaly=result.is_anomaly,
            is_negative_anomaly=result.is_negative,
            is_positive_anomaly=result.is_positive,
            severity=result.severity,
        )


class LastDetectResponse(_Body):
    period: int
    suggested_window: int = Field(alias="suggestedWindow")
    expected_value: float = Field(alias="expectedValue")
    upper_margin: float = Field(alias="upperMargin")
    lower_margin: float = Field(alias="lowerMargin")
    is_anomaly: bool = Field(alias="isAnomaly")
    is_negative_anomaly: bool = Field(alias="isNegativeAnomaly")
    is_positive_anomaly: bool = Field(alias="isPositiveAnomaly")
    severity: float

    @classmethod
    def of(cls, result: UnivariateResult) -> Self:
        return cls(
            period=result.period,
            suggested_window=SUGGESTED_WINDOW,
            expected_value=result.expected[-1],
            upper_margin=result.upper_margins[-1],
            lower_margin=result.lower_margins[-1],
            is_anomaly=result.is_anomaly[-1],
            is_negative_anomaly=result.is_negative[-1],
            is_positive_anomaly=result.is_positive[-1],
            severity=result.severity[-1],
        )


class ChangePointResponse(_Body):
    period: int
    is_change_point: list[bool] = Field(alias="isChangePoint")
    confidence_scores: list[float] = Field(alias="confidenceScores")

    @classmethod
    def of(cls, result: ChangePoints) -> Self:
        return cls(
            period=result.period,
            is_change_point=result.is_change_point,
            confidence_scores=result.confidence,
        )
