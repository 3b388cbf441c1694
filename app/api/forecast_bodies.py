"""Forecast request bodies: answered whole where the model runs, parsed here only when that fails.

`answer_forecasts` runs in the inference worker process (or on the inference thread) for a micro-batch of raw
bodies: parse, check, one forward pass for every series of every request, interval shaping and JSON encoding.
The event loop then only authenticates, picks the model version and forwards bytes, which keeps forecasts
close to the HTTP stack's own throughput (bench/serve.py). A body the fast parse rejects is parsed again by
`parse_forecast_body` exactly as FastAPI parses route bodies, so clients get the same errors as on every route.
"""

from __future__ import annotations

import email.message
import json
from typing import Any, Final

import numpy as np
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from pydantic_core import to_json

from app.api.schemas import ForecastRequest, SeriesPayload
from app.errors import InvalidInputError
from app.forecasting.forecaster import Forecaster
from app.serving.bodies import BodyReply
from app.serving.inference import (
    SeriesInput,
    ShapedForecasts,
    check_horizon,
    check_inputs,
    check_levels,
    model_inputs,
    shape_forecasts,
)

_Accepted = tuple[int, ForecastRequest, list[SeriesInput], int]


def to_inputs(series: list[SeriesPayload]) -> list[SeriesInput]:
    return [
        SeriesInput(
            id=item.id,
            values=np.asarray(item.values, dtype=np.float64),
            timestamps=None if item.timestamps is None else np.array(item.timestamps, dtype="datetime64[ns]"),
        )
        for item in series
    ]


def answer_forecasts(forecaster: Forecaster, model: dict[str, Any], bodies: list[bytes]) -> list[BodyReply]:
    """One reply per raw body; the accepted ones share a single forward pass."""
    replies: list[BodyReply] = [BodyReply("reparse")] * len(bodies)
    accepted: list[_Accepted] = []
    for index, body in enumerate(bodies):
        try:
            request = ForecastRequest.model_validate_json(body)
            horizon = request.horizon or forecaster.spec.horizon
            check_horizon(forecaster, horizon)
            check_levels(forecaster, request.levels)
            series = to_inputs(request.series)
            check_inputs(forecaster, series)
        except ValidationError:
            continue
        except InvalidInputError as error:
            replies[index] = BodyReply("invalid", detail=error.detail, fields=error.fields)
            continue
        accepted.append((index, request, series, horizon))
    if accepted:
        windows, calendar = model_inputs(forecaster, [item for *_, series, _ in accepted for item in series])
        quantiles = forecaster.predict(windows, calendar)  # [sum n, H, Q]
        start = 0
        for index, request, series, horizon in accepted:
            own = quantiles[start : start + len(series)]  # [n, H, Q]
            start += len(series)
            replies[index] = _reply(forecaster, model, request, series, own, horizon)
    return replies


def _reply(
    forecaster: Forecaster,
    model: dict[str, Any],
    request: ForecastRequest,
    series: list[SeriesInput],
    quantiles: np.ndarray,
    horizon: int,
) -> BodyReply:
    try:
        shaped = shape_forecasts(forecaster, series, quantiles, horizon, request.levels)
    except InvalidInputError as error:  # non-finite forecasts
        return BodyReply("invalid", detail=error.detail, fields=error.fields)
    body = to_json({"model": model, "forecasts": forecast_items(series, shaped)})
    return BodyReply("ok", body=body, series=len(series))


def forecast_items(series: list[SeriesInput], shaped: ShapedForecasts) -> list[dict[str, Any]]:
    mean = shaped.mean.tolist()
    bounds = [(i.level, i.lower.tolist(), i.upper.tolist()) for i in shaped.intervals]
    return [
        {
            "id": item.id,
            "timestamps": iso_stamps(stamps),
            "mean": mean[k],
            "intervals": [
                {"level": level, "lower": lower[k], "upper": upper[k]} for level, lower, upper in bounds
            ],
        }
        for k, (item, stamps) in enumerate(zip(series, shaped.timestamps, strict=True))
    ]


def iso_stamps(values: np.ndarray | None) -> list[str] | None:
    return None if values is None else [str(np.datetime_as_string(v, unit="s")) + "Z" for v in values]


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
        try:
            value = json.loads(body)
        except json.JSONDecodeError as error:
            problem = {"type": "json_invalid", "loc": ("body", error.pos), "msg": "JSON decode error"}
            raise RequestValidationError([{**problem, "input": {}, "ctx": {"error": error.msg}}]) from None
        except UnicodeDecodeError:
            raise RequestValidationError([_NOT_UTF8]) from None
    elif body:
        value = body
    if value is None:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    try:
        return ForecastRequest.model_validate(value)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def canonical_body(content_type: str | None, body: bytes) -> bytes:
    """`body` parsed as FastAPI would (raising its 4xx errors), re-encoded as JSON the fast parse accepts."""
    return parse_forecast_body(content_type, body).model_dump_json().encode()


_NOT_UTF8: Final = {
    "type": "json_invalid",
    "loc": ("body",),
    "msg": "JSON decode error",
    "ctx": {"error": "not UTF-8"},
}


def _openapi_body() -> dict[str, Any]:
    schema = ForecastRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # SeriesPayload is in the components already (the detect route's body)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


FORECAST_BODY_OPENAPI: Final = _openapi_body()
