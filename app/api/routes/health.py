"""Liveness, readiness and Prometheus metrics (no key required)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from app.api.deps import ServicesDep
from app.api.schemas.common import ModelRef
from app.api.schemas.health import HealthResponse, ReadinessResponse
from app.concurrency import run_blocking

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse)
async def read_health() -> HealthResponse:
    """The process is alive and answering."""
    return HealthResponse(status="ok")


@router.get("/readyz", response_model=ReadinessResponse, responses={503: {"model": ReadinessResponse}})
async def read_readiness(services: ServicesDep) -> JSONResponse:
    """Registry reachable and the default models loaded and warmed."""
    checks = {"models": "loaded" if services.ready else "loading"}
    try:
        await run_blocking(services.database.ping)
        checks["registry"] = "reachable"
    except Exception as error:
        checks["registry"] = f"unreachable: {type(error).__name__}"
    if services.load_problems:
        checks["load_problems"] = "; ".join(services.load_problems)
    ready = services.ready and checks["registry"] == "reachable"
    body = ReadinessResponse(
        status="ready" if ready else "not_ready",
        checks=checks,
        models=[ModelRef(name=name, version=version) for name, version in services.pool.loaded_versions()],
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def read_metrics(services: ServicesDep) -> Response:
    """Prometheus text exposition."""
    payload, content_type = services.metrics.render()
    return Response(payload, media_type=content_type)
