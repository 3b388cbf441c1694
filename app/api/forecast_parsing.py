"""The API's own parse of forecast request bodies, for the bodies the fast parse where the model runs rejects.

Forecast routes forward raw bodies to `app.serving.forecast_answers`; a body answered `reparse` there is parsed
here exactly as FastAPI parses route bodies, so clients get the same errors as on every route. The route's
OpenAPI request body is declared by hand (`FORECAST_BODY_OPENAPI`) because FastAPI never sees it parsed.
"""

from __future__ import annotations

import email.message
import json
from typing import Any, Final

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.problems import invalid_json_error, unparsable_json_reason
from app.api.schemas.forecasts import ForecastRequest


def is_json_media_type(content_type: str | None) -> bool:
    """Whether FastAPI (strict about content types) would parse a body sent with this Content-Type as JSON."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def parse_forecast_body(content_type: str | None, body: bytes) -> ForecastRequest:
    """Parse like FastAPI parses a `ForecastRequest` route body, raising the same RequestValidationError."""
    value: Any = None
    if body and is_json_media_type(content_type):
        value = _load_json(body)
    elif body:
        value = body
    if value is None:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    try:
        return ForecastRequest.model_validate(value)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def _load_json(body: bytes) -> Any:
    """`json.loads(body)`, its every refusal raised as the 400 FastAPI routes give (`app.api.problems`)."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        problem = {"type": "json_invalid", "loc": ("body", error.pos), "msg": "JSON decode error"}
        raise RequestValidationError([{**problem, "input": {}, "ctx": {"error": error.msg}}]) from None
    except (ValueError, RecursionError) as error:  # not UTF-8, nested too deeply, an integer too long
        reason = unparsable_json_reason(error) or "unreadable"
        raise RequestValidationError([invalid_json_error(reason)]) from None


def canonical_body(content_type: str | None, body: bytes) -> bytes:
    """`body` parsed as FastAPI would (raising its 4xx errors), re-encoded as JSON the fast parse accepts."""
    return parse_forecast_body(content_type, body).model_dump_json().encode()


def _openapi_body() -> dict[str, Any]:
    schema = ForecastRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # SeriesPayload is in the components already (the detect route's body)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


FORECAST_BODY_OPENAPI: Final = _openapi_body()
