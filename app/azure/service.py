"""The three Azure operations, from a request's series to the answer (run on the detection thread)."""

from __future__ import annotations

from app.azure.changepoint import ChangePoints, detect_change_points
from app.azure.series import SeriesRequest, prepare_series
from app.azure.univariate import UnivariateResult, detect_entire, detect_last


def entire_detect(
    request: SeriesRequest, limit: int, sensitivity: int | None, max_anomaly_ratio: float | None
) -> UnivariateResult:
    return detect_entire(prepare_series(request, limit), sensitivity, max_anomaly_ratio)


def last_detect(
    request: SeriesRequest, limit: int, sensitivity: int | None, max_anomaly_ratio: float | None
) -> UnivariateResult:
    return detect_last(prepare_series(request, limit), sensitivity, max_anomaly_ratio)


def change_point_detect(
    request: SeriesRequest, limit: int, window: int | None, threshold: float | None
) -> ChangePoints:
    return detect_change_points(prepare_series(request, limit), window, threshold)
