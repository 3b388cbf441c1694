"""The forecast wire layer: raw `/forecast` request bodies in, encoded JSON answers out.

`answer_forecasts` is the `AnswerBodies` the API wires into serving (`app.serving.bodies`); it runs where the model
runs, for a micro-batch of raw bodies: in the inference worker process (`app.api.inference_worker`) or on the
inference thread (`ModelPool.answer`). It parses, checks, runs one forward pass for every series of every request,
shapes the intervals and encodes the JSON answer, so the event loop only authenticates, picks the model version and
forwards bytes (bench/serve.py). A body the fast parse rejects is answered `reparse`: the API parses it itself
(`app.api.forecast_parsing`), so clients get the same validation errors as on every other route.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic_core import to_json

from app.api.schemas.forecasts import ForecastRequest, SeriesPayload
from app.errors import InvalidInputError
from app.forecasting.forecaster import Forecaster
from app.serving.bodies import BodyReply
from app.serving.inference import (
    SeriesInput,
    ShapedForecasts,
    check_inputs,
    check_levels,
    model_inputs,
    shape_forecasts,
)
from app.serving.recursion import check_horizon, extend_horizon, horizon_marks
from app.timestamps import datetime64_to_iso_z

_Accepted = tuple[int, ForecastRequest, list[SeriesInput], int]
TRAINING_CALIBRATION = {"intervals": "training", "observations": 0}


def to_inputs(series: list[SeriesPayload]) -> list[SeriesInput]:
    return [
        SeriesInput(
            id=item.id,
            values=np.asarray(item.values, dtype=np.float64),
            timestamps=None if item.timestamps is None else np.array(item.timestamps, dtype="datetime64[ns]"),
        )
        for item in series
    ]


def fast_parse(body: bytes) -> ForecastRequest | None:
    """The request in `body`, or None for any body it refuses (invalid JSON, too deep, numbers too long, invalid
    fields): the API then parses that body itself to answer the same 4xx as other routes, never a 500."""
    try:
        return ForecastRequest.model_validate_json(body)
    except (ValueError, RecursionError):  # pydantic's ValidationError is a ValueError
        return None


def answer_forecasts(forecaster: Forecaster, model: dict[str, Any], bodies: list[bytes]) -> list[BodyReply]:
    """One reply per raw body; the accepted ones share a single forward pass."""
    replies: list[BodyReply] = [BodyReply("reparse")] * len(bodies)
    accepted: list[_Accepted] = []
    for index, body in enumerate(bodies):
        request = fast_parse(body)
        if request is None:
            continue
        try:
            horizon = request.horizon or forecaster.spec.horizon
            check_horizon(forecaster, horizon)
            check_levels(forecaster, request.levels)
            series = to_inputs(request.series)
            check_inputs(forecaster, series)
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
        quantiles = extend_horizon(forecaster, series, quantiles, horizon)  # beyond the trained horizon
        shaped = shape_forecasts(forecaster, series, quantiles, horizon, request.levels)
    except InvalidInputError as error:  # non-finite forecasts, timestamps past 2262
        return BodyReply("invalid", detail=error.detail, fields=error.fields)
    marks = horizon_marks(forecaster, horizon)
    body = to_json({"model": model, **marks, "forecasts": forecast_items(series, shaped)})
    return BodyReply("ok", body=body, series=len(series))


def forecast_items(series: list[SeriesInput], shaped: ShapedForecasts) -> list[dict[str, Any]]:
    """The `forecasts` of a `ForecastResponse` as plain data (encoded directly: this is the hot path)."""
    mean = shaped.mean.tolist()
    bounds = [(i.level, i.lower.tolist(), i.upper.tolist()) for i in shaped.intervals]
    return [
        {
            "id": item.id,
            "timestamps": datetime64_to_iso_z(stamps),
            "mean": mean[k],
            "intervals": [
                {"level": level, "lower": lower[k], "upper": upper[k]} for level, lower, upper in bounds
            ],
            "calibration": TRAINING_CALIBRATION,  # the server may replace it (app.serving.online_intervals)
        }
        for k, (item, stamps) in enumerate(zip(series, shaped.timestamps, strict=True))
    ]
