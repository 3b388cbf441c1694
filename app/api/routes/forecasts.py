"""Forecasts (batch anomaly detection: `app.api.routes.detect`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import ReadAccess, ServicesDep
from app.api.forecast_parsing import FORECAST_BODY_OPENAPI, canonical_body, is_json_media_type
from app.api.schemas.forecasts import ForecastResponse
from app.api.selection import SELECTION_PARAMETERS, parse_selection
from app.errors import InvalidInputError
from app.serving.pool import ModelPool, ServedModel

router = APIRouter(prefix="/v1/models", tags=["forecasting"], route_class=AuthenticatedRoute)


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
    answer = await services.intervals.annotate(served.name, served.version, reply.body)  # online calibration
    return Response(answer, media_type="application/json")
