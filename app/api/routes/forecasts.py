"""Forecasts and batch anomaly detection."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.anomaly import sensitivity_to_alpha
from app.api.auth import ReadAccess
from app.api.deps import ServicesDep
from app.api.schemas import (
    MAX_VERSION,
    DetectedPoint,
    DetectRequest,
    DetectResponse,
    ForecastRequest,
    ForecastResponse,
    ModelRef,
    SeriesDetection,
    SeriesPayload,
)
from app.errors import InvalidInputError
from app.serving.inference import (
    SeriesInput,
    check_horizon,
    check_inputs,
    check_levels,
    detect_series,
    model_inputs,
    shape_forecasts,
)
from app.serving.pool import ModelPool, ServedModel

router = APIRouter(prefix="/v1/models", tags=["forecasting"])

VersionQuery = Annotated[
    int | None, Query(ge=1, le=MAX_VERSION, description="Version number; default: production, else latest.")
]
AliasQuery = Annotated[str | None, Query(max_length=64, description="Alias to use instead of a version.")]


def to_inputs(series: list[SeriesPayload]) -> list[SeriesInput]:
    return [
        SeriesInput(
            id=item.id,
            values=np.asarray(item.values, dtype=np.float64),
            timestamps=None if item.timestamps is None else np.array(item.timestamps, dtype="datetime64[ns]"),
        )
        for item in series
    ]


async def select_model(pool: ModelPool, name: str, version: int | None, alias: str | None) -> ServedModel:
    if version is not None and alias is not None:
        raise InvalidInputError(
            "pass either ?version or ?alias, not both", fields={"version": version, "alias": alias}
        )
    return await pool.get(name, version=version, alias=alias)


def _stamps(values: np.ndarray | None) -> list[str] | None:
    return None if values is None else [str(np.datetime_as_string(v, unit="s")) + "Z" for v in values]


@router.post("/{name}/forecast", response_model=ForecastResponse)
async def create_forecast(
    name: str,
    body: ForecastRequest,
    services: ServicesDep,
    _: ReadAccess,
    version: VersionQuery = None,
    alias: AliasQuery = None,
) -> JSONResponse:
    """Forecast the next steps of each series, with calibrated prediction intervals."""
    served = await select_model(services.pool, name, version, alias)
    forecaster = served.loaded.forecaster
    horizon = body.horizon or forecaster.spec.horizon
    check_horizon(forecaster, horizon)
    check_levels(forecaster, body.levels)
    series = to_inputs(body.series)
    check_inputs(forecaster, series)
    windows, calendar = model_inputs(forecaster, series)
    quantiles = await served.batcher.submit(windows, calendar)  # [n, H, Q]
    forecasts = shape_forecasts(forecaster, series, quantiles, horizon, body.levels)  # 422 if not finite
    services.metrics.forecasts(served.name, served.version, len(series))
    return JSONResponse(
        {
            "model": {"name": served.name, "version": served.version},
            "forecasts": [
                {
                    "id": f.id,
                    "timestamps": _stamps(f.timestamps),
                    "mean": f.mean.tolist(),
                    "intervals": [
                        {"level": i.level, "lower": i.lower.tolist(), "upper": i.upper.tolist()}
                        for i in f.intervals
                    ],
                }
                for f in forecasts
            ],
        }
    )


@router.post("/{name}/detect", response_model=DetectResponse)
async def detect_anomalies(
    name: str,
    body: DetectRequest,
    services: ServicesDep,
    _: ReadAccess,
    version: VersionQuery = None,
    alias: AliasQuery = None,
) -> DetectResponse:
    """Score every point against its one-step-ahead forecast; flag calibrated outliers."""
    served = await select_model(services.pool, name, version, alias)
    forecaster = served.loaded.forecaster
    series = to_inputs(body.series)
    check_inputs(forecaster, series, minimum_extra=1)
    results = []
    for item in series:
        points = await services.pool.infer(
            detect_series, forecaster, served.calibration, item, body.sensitivity
        )
        flagged = sum(point.is_anomaly for point in points)
        services.metrics.anomalies(served.name, served.version, flagged)
        results.append(
            SeriesDetection(
                id=item.id,
                anomalies=flagged,
                points=[
                    DetectedPoint(
                        index=p.index,
                        timestamp=None if p.timestamp is None else _stamps(np.array([p.timestamp]))[0],  # type: ignore[index]
                        value=p.value,
                        expected=p.expected,
                        lower=p.lower,
                        upper=p.upper,
                        score=p.score,
                        is_anomaly=p.is_anomaly,
                        direction=p.direction,  # type: ignore[arg-type]
                    )
                    for p in points
                ],
            )
        )
    return DetectResponse(
        model=ModelRef(name=served.name, version=served.version),
        sensitivity=body.sensitivity,
        alpha=sensitivity_to_alpha(body.sensitivity),
        results=results,
    )
