"""Forecast requests answered from their raw bodies where the model runs, so the event loop only forwards bytes.

`AnswerBodies` is the shape of the function that parses, checks, forecasts, shapes and encodes; the API supplies
it (`app.api.forecast_answers.answer_forecasts`), called in the inference worker process or on the inference
thread. A body it cannot parse is answered `reparse`: the API then parses it itself, exactly as for any other
route, so clients see the same validation errors everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from app.forecasting.forecaster import Forecaster


@dataclass(frozen=True)
class BodyReply:
    kind: Literal["ok", "reparse", "invalid"]
    body: bytes = b""  # ok: the JSON response body
    series: int = 0  # ok: series forecast (for metrics)
    detail: str = ""  # invalid: what is wrong (a 422 problem)
    fields: dict[str, Any] = field(default_factory=dict)  # invalid: the offending fields


AnswerBodies = Callable[[Forecaster, dict[str, Any], list[bytes]], list[BodyReply]]
