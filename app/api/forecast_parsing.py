"""The API's own parse of forecast request bodies, for the bodies the fast parse where the model runs rejects.

Forecast routes forward raw bodies to `app.api.forecast_answers`; a body answered `reparse` there is parsed
here exactly as FastAPI parses route bodies, so clients get the same errors as on every route. The route's
OpenAPI request body is declared by hand (`FORECAST_BODY_OPENAPI`) because FastAPI never sees it parsed.
"""

from __future__ import annotations

from typing import Final

from app.api.body_parsing import is_json_media_type, parse_like_fastapi, request_body_openapi
from app.api.schemas.forecasts import ForecastRequest

__all__ = ["FORECAST_BODY_OPENAPI", "canonical_body", "is_json_media_type", "parse_forecast_body"]


def parse_forecast_body(content_type: str | None, body: bytes) -> ForecastRequest:
    """Parse like FastAPI parses a `ForecastRequest` route body, raising the same RequestValidationError."""
    return parse_like_fastapi(ForecastRequest, content_type, body)


def canonical_body(content_type: str | None, body: bytes) -> bytes:
    """`body` parsed as FastAPI would (raising its 4xx errors), re-encoded as JSON the fast parse accepts."""
    return parse_forecast_body(content_type, body).model_dump_json().encode()


FORECAST_BODY_OPENAPI: Final = request_body_openapi(ForecastRequest)
