"""Batch anomaly detection: with a registered model's forecasts (`/v1/models/{name}/detect`) or model-less
(`/v1/detect`, the detector's self-learned forecaster). One request schema, one answer shape.

At most `TSWATCH_MAX_DETECT_POINTS` points per request (413 beyond); the body is parsed in a child process
(`app.api.body_process`) and the scoring runs on the detection thread, so streams and forecasts keep answering
meanwhile. Large answers are encoded piece by piece while sent (`app.api.detect_wire`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import ReadAccess, ServicesDep
from app.api.detect_wire import DETECT_BODY_OPENAPI, detection_parts
from app.api.schemas.forecasts import DetectResponse
from app.api.selection import SELECTION_PARAMETERS, parse_selection
from app.api.services import Services
from app.concurrency import run_blocking
from app.serving.detection import Detection, release_free_memory

router = APIRouter(prefix="/v1", tags=["detection"], route_class=AuthenticatedRoute)

LARGE_DETECT_POINTS = 20_000  # detections at least this big are streamed, then freed pages go back to the OS


@router.post(
    "/models/{name}/detect",
    response_model=DetectResponse,
    openapi_extra={**SELECTION_PARAMETERS, **DETECT_BODY_OPENAPI},
)
async def detect_anomalies(_: ReadAccess, services: ServicesDep, name: str, request: Request) -> Response:
    """Score every point with the one detector, against the model's one-step-ahead forecasts."""
    selection = parse_selection(request)
    return await _detect(services, request, name, selection.version, selection.alias)


@router.post("/detect", response_model=DetectResponse, openapi_extra=DETECT_BODY_OPENAPI)
async def detect_without_model(_: ReadAccess, services: ServicesDep, request: Request) -> Response:
    """Score every point with the one detector and its self-learned forecaster: no trained model needed."""
    return await _detect(services, request, None)


async def _detect(
    services: Services,
    request: Request,
    name: str | None,
    version: int | None = None,
    alias: str | None = None,
) -> Response:
    body, content_type = await request.body(), request.headers.get("content-type")
    options, series = await services.detect_bodies.parse(content_type, body)
    del body  # the raw bytes are not needed while scoring
    detection = await services.detection.detect(name, series, options, version=version, alias=alias)
    return await _answer(detection)


async def _answer(detection: Detection) -> Response:
    parts = detection_parts(detection)
    if detection.points < LARGE_DETECT_POINTS:
        return Response(await run_blocking(b"".join, parts), media_type="application/json")
    # encoded piece by piece while sent (never the whole answer in memory); then freed pages go back to the OS
    return StreamingResponse(
        parts, media_type="application/json", background=BackgroundTask(release_free_memory)
    )
