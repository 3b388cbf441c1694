"""Liveness, readiness and Prometheus metrics (no key required)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from app.api.deps import ServicesDep
from app.api.schemas.common import ModelRef
from app.api.schemas.health import HealthResponse, ReadinessResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse)
async def read_health() -> HealthResponse:
    """The process is alive and answering."""
    return HealthResponse(status="ok")


@router.get("/readyz", response_model=ReadinessResponse, responses={503: {"model": ReadinessResponse}})
async def read_readiness(services: ServicesDep) -> JSONResponse:
    """Database reachable and the default models loaded and warmed; `checks.database` names the backend."""
    readiness = await services.readiness()
    body = ReadinessResponse(
        status="ready" if readiness.ready else "not_ready",
        checks=readiness.checks,
        models=[ModelRef(name=name, version=version) for name, version in readiness.models],
    )
    return JSONResponse(body.model_dump(), status_code=200 if readiness.ready else 503)


@router.get("/metrics", response_class=Response)
async def read_metrics(services: ServicesDep) -> Response:
    """Prometheus text exposition (with per-stream scores and alarms when `stream_metrics` is on)."""
    payload, content_type = services.metrics.render()
    if services.stream_metrics is not None:
        payload += await services.stream_metrics.render()
    return Response(payload, media_type=content_type)
