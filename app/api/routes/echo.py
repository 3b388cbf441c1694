"""An echo of the forecast body: the HTTP stack's ceiling, for `bench/serve.py` (off unless enabled)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.auth import ReadAccess
from app.api.schemas import ForecastRequest

router = APIRouter(prefix="/v1", tags=["benchmark"])


@router.post("/echo", response_model=ForecastRequest)
async def create_echo(body: ForecastRequest, _: ReadAccess) -> ForecastRequest:
    """Parse a forecast request and return it unchanged."""
    return body
