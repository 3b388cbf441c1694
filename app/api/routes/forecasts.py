"""Forecasts and batch anomaly detection."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.anomaly import sensitivity_to_alpha
from app.api.auth import ReadAccess
from app.api.forecast_bodies import (
    FORECAST_BODY_OPENAPI,
    canonical_body,
    is_json_media_type,
    iso_stamps,
    to_inputs,
)
from app.api.schemas import (
    DetectRequest,
    DetectResponse,
    ForecastResponse,
)
from app.api.selection import SELECTION_PARAMETERS, parse_selection
from app.api.services import Services
from app.errors import InvalidInputError
from app.serving.inference import (
    PointDetection,
    SeriesInput,
    check_inputs,
    detect_series,
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


async def select_model(pool: ModelPool, name: str, version: int | None, alias: str | None) -> ServedModel:
    if version is not None and alias is not None:
        raise InvalidInputError(
            "pass either ?version or ?alias, not both", fields={"version": version, "alias": alias}
        )
    return await pool.get(name, version=version, alias=alias)


@router.post(
    "/{name}/forecast",
    response_model=ForecastResponse,
    openapi_extra={**SELECTION_PARAMETERS, **FORECAST_BODY_OPENAPI},
)
async def create_forecast(_: ReadAccess, name: str, request: Request) -> Response:
    """Forecast the next steps of each series, with calibrated prediction intervals."""
    target = await resolve_target(name, request)
    body, content_type = await request.body(), request.headers.get("content-type")
    if not (body and is_json_media_type(content_type)):
        body = canonical_body(content_type, body)  # raises the 4xx
    reply = await target.served.batcher.submit(body)  # parsed, checked and answered where the model runs
    if reply.kind == "reparse":
        reply = await target.served.batcher.submit(canonical_body(content_type, body))
    if reply.kind != "ok":
        raise InvalidInputError(reply.detail or "the request body could not be parsed", fields=reply.fields)
    target.services.metrics.forecasts(target.served.name, target.served.version, reply.series)
    return Response(reply.body, media_type="application/json")


def detection_payload(item: SeriesInput, points: list[PointDetection]) -> dict[str, Any]:
    """One series' detection result as plain JSON-ready data (built off the event loop for long series)."""
    stamps = iso_stamps(item.timestamps)
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
