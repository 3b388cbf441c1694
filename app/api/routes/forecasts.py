"""Forecasts and batch anomaly detection."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import ReadAccess, ServicesDep
from app.api.detect_wire import DETECT_BODY_OPENAPI, detection_parts
from app.api.forecast_parsing import FORECAST_BODY_OPENAPI, canonical_body, is_json_media_type
from app.api.schemas.forecasts import DetectResponse, ForecastResponse
from app.api.selection import SELECTION_PARAMETERS, parse_selection
from app.concurrency import run_blocking
from app.errors import InvalidInputError
from app.serving.detection import release_free_memory
from app.serving.pool import ModelPool, ServedModel

router = APIRouter(prefix="/v1/models", tags=["forecasting"], route_class=AuthenticatedRoute)

LARGE_DETECT_POINTS = 20_000  # detections at least this big are streamed, then freed pages go back to the OS


async def select_model(pool: ModelPool, request: Request, name: str) -> ServedModel:
    """The version `?version` / `?alias` (default: production, else latest) of model `name` names."""
    selection = parse_selection(request)
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


@router.post(
    "/{name}/detect",
    response_model=DetectResponse,
    openapi_extra={**SELECTION_PARAMETERS, **DETECT_BODY_OPENAPI},
)
async def detect_anomalies(_: ReadAccess, services: ServicesDep, name: str, request: Request) -> Response:
    """Score every point against its one-step-ahead forecast; flag calibrated outliers.

    At most `TSWATCH_MAX_DETECT_POINTS` points per request (413 beyond); the body is parsed in a child process
    (`app.api.body_process`) and the scoring runs on the detection thread, so streams and forecasts keep
    answering meanwhile."""
    body, content_type = await request.body(), request.headers.get("content-type")
    sensitivity, series = await services.detect_bodies.parse(content_type, body)
    del body  # the raw bytes are not needed while scoring
    selection = parse_selection(request)
    detection = await services.detection.detect(
        name, series, sensitivity, version=selection.version, alias=selection.alias
    )
    parts = detection_parts(detection.name, detection.version, detection.sensitivity, detection.series)
    if detection.points < LARGE_DETECT_POINTS:
        return Response(await run_blocking(b"".join, parts), media_type="application/json")
    # encoded piece by piece while sent (never the whole answer in memory); then freed pages go back to the OS
    return StreamingResponse(
        parts, media_type="application/json", background=BackgroundTask(release_free_memory)
    )
