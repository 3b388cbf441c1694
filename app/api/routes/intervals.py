"""Feeding actuals back: the online interval calibration of `app.serving.online_intervals`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import ServicesDep, WriteAccess
from app.api.forecast_answers import to_inputs
from app.api.routes.forecasts import select_model
from app.api.schemas.common import ModelRef
from app.api.schemas.intervals import ActualsRequest, ActualsResponse, FedSeriesPayload
from app.api.selection import SELECTION_PARAMETERS

router = APIRouter(prefix="/v1/models", tags=["forecasting"], route_class=AuthenticatedRoute)


@router.post("/{name}/actuals", response_model=ActualsResponse, openapi_extra=SELECTION_PARAMETERS)
async def feed_actuals(
    _: WriteAccess, services: ServicesDep, name: str, body: ActualsRequest, request: Request
) -> ActualsResponse:
    """Send the values that arrived since the last forecasts: the server recomputes the forecasts they resolve and
    corrects the intervals of this series' next forecasts from how those did."""
    served = await select_model(services.pool, request, name)
    fed = await services.intervals.feed(served, to_inputs(body.series))
    return ActualsResponse(
        model=ModelRef(name=served.name, version=served.version),
        series=[FedSeriesPayload(**vars(item)) for item in fed],
    )
