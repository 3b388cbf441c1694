"""Azure Anomaly Detector's univariate endpoints (v1.0 and v1.1), answered by the project's own detector.

The same paths as Azure under `/anomalydetector/{version}/timeseries/...` (change points at `changepoint`, and at
`changePoint` as the v1.0 client spells it); the key may come in `Ocp-Apim-Subscription-Key` as Azure's clients
send it, or as a bearer token. Errors on these paths are Azure's `{code, message}` (`app.api.problems`). The work
runs on the detection thread, bounded by `TSWATCH_MAX_DETECT_POINTS`.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import ReadAccess, ServicesDep
from app.api.schemas.azure import (
    ChangePointRequest,
    ChangePointResponse,
    DetectRequestV10,
    DetectRequestV11,
    EntireDetectResponse,
    LastDetectResponse,
)
from app.api.services import Services
from app.azure.series import SeriesRequest
from app.azure.service import change_point_detect, entire_detect, last_detect

router = APIRouter(prefix="/anomalydetector", tags=["azure"], route_class=AuthenticatedRoute)


@router.post("/v1.0/timeseries/entire/detect", response_model=EntireDetectResponse)
async def entire_v10(_: ReadAccess, services: ServicesDep, body: DetectRequestV10) -> EntireDetectResponse:
    """Azure v1.0 batch detection: every point scored."""
    return await _entire(services, body.to_series(), body.sensitivity, body.max_anomaly_ratio)


@router.post("/v1.1/timeseries/entire/detect", response_model=EntireDetectResponse)
async def entire_v11(_: ReadAccess, services: ServicesDep, body: DetectRequestV11) -> EntireDetectResponse:
    """Azure v1.1 batch detection: every point scored."""
    return await _entire(services, body.to_series(), body.sensitivity, body.max_anomaly_ratio)


@router.post("/v1.0/timeseries/last/detect", response_model=LastDetectResponse)
async def last_v10(_: ReadAccess, services: ServicesDep, body: DetectRequestV10) -> LastDetectResponse:
    """Azure v1.0 streaming detection: the last point judged by the points before it."""
    return await _last(services, body.to_series(), body.sensitivity, body.max_anomaly_ratio)


@router.post("/v1.1/timeseries/last/detect", response_model=LastDetectResponse)
async def last_v11(_: ReadAccess, services: ServicesDep, body: DetectRequestV11) -> LastDetectResponse:
    """Azure v1.1 streaming detection: the last point judged by the points before it."""
    return await _last(services, body.to_series(), body.sensitivity, body.max_anomaly_ratio)


@router.post("/v1.0/timeseries/changepoint/detect", response_model=ChangePointResponse)
@router.post("/v1.0/timeseries/changePoint/detect", include_in_schema=False)
async def change_points_v10(
    _: ReadAccess, services: ServicesDep, body: ChangePointRequest
) -> ChangePointResponse:
    """Azure v1.0 change-point detection."""
    return await _change_points(services, body, allow_none=False)


@router.post("/v1.1/timeseries/changepoint/detect", response_model=ChangePointResponse)
@router.post("/v1.1/timeseries/changePoint/detect", include_in_schema=False)
async def change_points_v11(
    _: ReadAccess, services: ServicesDep, body: ChangePointRequest
) -> ChangePointResponse:
    """Azure v1.1 change-point detection."""
    return await _change_points(services, body, allow_none=True)


async def _entire(
    services: Services, series: SeriesRequest, sensitivity: int | None, ratio: float | None
) -> EntireDetectResponse:
    detection = services.detection
    result = await detection.pool.detect(entire_detect, series, detection.max_points, sensitivity, ratio)
    return EntireDetectResponse.of(result)


async def _last(
    services: Services, series: SeriesRequest, sensitivity: int | None, ratio: float | None
) -> LastDetectResponse:
    detection = services.detection
    result = await detection.pool.detect(last_detect, series, detection.max_points, sensitivity, ratio)
    return LastDetectResponse.of(result)


async def _change_points(
    services: Services, body: ChangePointRequest, allow_none: bool
) -> ChangePointResponse:
    detection = services.detection
    series = body.to_series(allow_none)
    result = await detection.pool.detect(
        change_point_detect, series, detection.max_points, body.stable_trend_window, body.threshold
    )
    return ChangePointResponse.of(result)
