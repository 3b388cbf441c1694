"""Forecasts and batch anomaly detection."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.anomaly import sensitivity_to_alpha
from app.api.deps import ReadAccess, ServicesDep
from app.api.forecast_parsing import FORECAST_BODY_OPENAPI, canonical_body, is_json_media_type
from app.api.schemas.common import ModelRef
from app.api.schemas.forecasts import DetectRequest, DetectResponse, ForecastResponse, SeriesDetection
from app.api.selection import SELECTION_PARAMETERS, parse_selection
from app.concurrency import run_blocking
from app.errors import InvalidInputError
from app.serving.forecast_answers import to_inputs
from app.serving.inference import PointDetection, SeriesInput, check_inputs, detect_series
from app.serving.pool import ModelPool, ServedModel
from app.timestamps import datetime64_to_aware_utc

router = APIRouter(prefix="/v1/models", tags=["forecasting"])


async def select_model(pool: ModelPool, request: Request, name: str) -> ServedModel:
    """The version `?version` / `?alias` (default: production, else latest) of model `name` names."""
    selection = parse_selection(request)
    if selection.version is not None and selection.alias is not None:
        raise InvalidInputError(
            "pass either ?version or ?alias, not both",
            fields={"version": selection.version, "alias": selection.alias},
        )
    return await pool.get(name, version=selection.version, alias=selection.alias)


@router.post(
    "/{name}/forecast",
    response_model=ForecastResponse,
    openapi_extra={**SELECTION_PARAMETERS, **FORECAST_BODY_OPENAPI},
)
async def create_forecast(_: ReadAccess, services: ServicesDep, name: str, request: Request) -> Response:
    """Forecast the next steps of each series, with calibrated prediction intervals."""
    served = await select_model(services.pool, request, name)
    body, content_type = await request.body(), request.headers.get("content-type")
    if not (body and is_json_media_type(content_type)):
        body = canonical_body(content_type, body)  # raises the 4xx
    reply = await served.batcher.submit(body)  # parsed, checked and answered where the model runs
    if reply.kind == "reparse":
        reply = await served.batcher.submit(canonical_body(content_type, body))
    if reply.kind != "ok":
        raise InvalidInputError(reply.detail or "the request body could not be parsed", fields=reply.fields)
    services.metrics.forecasts(served.name, served.version, reply.series)
    return Response(reply.body, media_type="application/json")


def series_detection(item: SeriesInput, points: list[PointDetection]) -> SeriesDetection:
    """One series' detection result, validated from plain data in one call: for a long series that is faster
    than building each point's model, and with `model_dump_json` faster than plain dicts and `json.dumps`."""
    stamps = None if item.timestamps is None else datetime64_to_aware_utc(item.timestamps)
    data: dict[str, Any] = {
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
    return SeriesDetection.model_validate(data)


@router.post("/{name}/detect", response_model=DetectResponse, openapi_extra=SELECTION_PARAMETERS)
async def detect_anomalies(
    _: ReadAccess, services: ServicesDep, name: str, request: Request, body: DetectRequest
) -> Response:
    """Score every point against its one-step-ahead forecast; flag calibrated outliers."""
    served = await select_model(services.pool, request, name)
    forecaster = served.loaded.forecaster
    series = to_inputs(body.series)
    check_inputs(forecaster, series, minimum_extra=1)
    results = []
    for item in series:
        points = await services.pool.infer(
            detect_series, forecaster, served.calibration, item, body.sensitivity
        )
        result = await run_blocking(series_detection, item, points)
        services.metrics.anomalies(served.name, served.version, result.anomalies)
        results.append(result)
    answer = DetectResponse(
        model=ModelRef(name=served.name, version=served.version),
        sensitivity=body.sensitivity,
        alpha=sensitivity_to_alpha(body.sensitivity),
        results=results,
    )
    return Response(await run_blocking(answer.model_dump_json), media_type="application/json")
