"""Forecasts and batch anomaly detection."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic_core import to_json

from app.anomaly import sensitivity_to_alpha
from app.api.auth import ReadAccess
from app.api.schemas import (
    DetectRequest,
    DetectResponse,
    ForecastRequest,
    ForecastResponse,
    SeriesPayload,
)
from app.api.selection import SELECTION_PARAMETERS, parse_selection
from app.api.services import Services
from app.errors import InvalidInputError
from app.serving.inference import (
    PointDetection,
    SeriesInput,
    ShapedForecasts,
    check_horizon,
    check_inputs,
    check_levels,
    detect_series,
    model_inputs,
    shape_forecasts,
)
from app.serving.pool import ModelPool, ServedModel

router = APIRouter(prefix="/v1/models", tags=["forecasting"])


@dataclass(frozen=True)
class Target:
    """The services and the model version a forecast or detection request is answered with."""

    services: Services
    served: ServedModel


async def resolve_target(name: str, request: Request) -> Target:
    """Called in the route, not declared as a dependency: each dependency costs ~10 µs on the forecast hot path."""
    services: Services = request.app.state.services
    selection = parse_selection(request)
    return Target(services, await select_model(services.pool, name, selection.version, selection.alias))


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


@router.post("/{name}/forecast", response_model=ForecastResponse, openapi_extra=SELECTION_PARAMETERS)
async def create_forecast(_: ReadAccess, name: str, request: Request, body: ForecastRequest) -> Response:
    """Forecast the next steps of each series, with calibrated prediction intervals."""
    target = await resolve_target(name, request)
    services, served = target.services, target.served
    forecaster = served.loaded.forecaster
    horizon = body.horizon or forecaster.spec.horizon
    check_horizon(forecaster, horizon)
    check_levels(forecaster, body.levels)
    series = to_inputs(body.series)
    check_inputs(forecaster, series)
    windows, calendar = model_inputs(forecaster, series)
    quantiles = await served.batcher.submit(windows, calendar)  # [n, H, Q]
    shaped = shape_forecasts(forecaster, series, quantiles, horizon, body.levels)  # 422 if not finite
    services.metrics.forecasts(served.name, served.version, len(series))
    payload = {
        "model": {"name": served.name, "version": served.version},
        "forecasts": forecast_items(series, shaped),
    }
    return Response(to_json(payload), media_type="application/json")


def forecast_items(series: list[SeriesInput], shaped: ShapedForecasts) -> list[dict[str, Any]]:
    mean = shaped.mean.tolist()
    bounds = [(i.level, i.lower.tolist(), i.upper.tolist()) for i in shaped.intervals]
    return [
        {
            "id": item.id,
            "timestamps": _stamps(stamps),
            "mean": mean[k],
            "intervals": [
                {"level": level, "lower": lower[k], "upper": upper[k]} for level, lower, upper in bounds
            ],
        }
        for k, (item, stamps) in enumerate(zip(series, shaped.timestamps, strict=True))
    ]


def detection_payload(item: SeriesInput, points: list[PointDetection]) -> dict[str, Any]:
    """One series' detection result as plain JSON-ready data (built off the event loop for long series)."""
    stamps = _stamps(item.timestamps)
    return {
        "id": item.id,
        "anomalies": sum(point.is_anomaly for point in points),
        "points": [
            {
                "index": p.index,
                "timestamp": None if stamps is None else stamps[p.index],
                "value": p.value,
                "expected": p.expected,
                "lower": p.lower,
                "upper": p.upper,
                "score": p.score,
                "is_anomaly": p.is_anomaly,
                "direction": p.direction,
            }
            for p in points
        ],
    }


def encode_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()


@router.post("/{name}/detect", response_model=DetectResponse, openapi_extra=SELECTION_PARAMETERS)
async def detect_anomalies(_: ReadAccess, name: str, request: Request, body: DetectRequest) -> Response:
    """Score every point against its one-step-ahead forecast; flag calibrated outliers."""
    target = await resolve_target(name, request)
    services, served = target.services, target.served
    forecaster = served.loaded.forecaster
    series = to_inputs(body.series)
    check_inputs(forecaster, series, minimum_extra=1)
    results = []
    for item in series:
        points = await services.pool.infer(
            detect_series, forecaster, served.calibration, item, body.sensitivity
        )
        result = await asyncio.to_thread(detection_payload, item, points)
        services.metrics.anomalies(served.name, served.version, result["anomalies"])
        results.append(result)
    payload = {
        "model": {"name": served.name, "version": served.version},
        "sensitivity": body.sensitivity,
        "alpha": sensitivity_to_alpha(body.sensitivity),
        "results": results,
    }
    return Response(await asyncio.to_thread(encode_json, payload), media_type="application/json")
