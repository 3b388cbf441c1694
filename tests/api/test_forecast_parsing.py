"""The API's own parse of forecast bodies (the ones the fast parse where the model runs rejects)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.exceptions import RequestValidationError

from app.api.forecast_answers import answer_forecasts
from app.api.forecast_parsing import canonical_body, is_json_media_type, parse_forecast_body
from app.forecasting.forecaster import Forecaster
from app.registry.factory import open_registry
from app.settings import Settings

MODEL = {"name": "tiny", "version": 1}


@pytest.fixture(scope="module")
def forecaster(tiny_models_dir: Path) -> Forecaster:
    registry = open_registry(Settings(models_dir=tiny_models_dir))
    return registry.load(registry.get_version("tiny", 1)).forecaster


def body(n: int = 30, series_id: str = "a", **extra: object) -> bytes:
    stamps = pd.date_range("2024-03-01", periods=n, freq="h")
    values = (10 + 3 * np.sin(2 * np.pi * np.arange(n) / 24)).round(3).tolist()
    series = {"id": series_id, "values": values, "timestamps": [s.isoformat() for s in stamps]}
    return json.dumps({"series": [series], **extra}).encode()


def test_the_api_parse_raises_the_errors_fastapi_would() -> None:
    with pytest.raises(RequestValidationError) as invalid_json:
        parse_forecast_body("application/json", b'{"series": [')
    (error,) = invalid_json.value.errors()
    assert error["type"] == "json_invalid" and error["loc"] == ("body", 12)
    with pytest.raises(RequestValidationError) as missing:
        parse_forecast_body("application/json", b"")
    assert missing.value.errors()[0]["type"] == "missing"
    with pytest.raises(RequestValidationError) as not_json:
        parse_forecast_body("text/plain", body(30))
    assert not_json.value.errors()[0]["loc"] == ("body",)
    with pytest.raises(RequestValidationError) as non_finite:
        parse_forecast_body("application/json", body(30).replace(b'"values": [10.0', b'"values": [NaN', 1))
    assert non_finite.value.errors()[0]["loc"] == ("body", "series", 0, "values", 0)
    assert parse_forecast_body("application/vnd.api+json", body(30)).series[0].id == "a"


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/problem+json", True),
        ("text/plain", False),
        (None, False),
    ],
)
def test_json_media_types_follow_fastapi(content_type: str | None, expected: bool) -> None:
    assert is_json_media_type(content_type) is expected


def test_a_canonical_body_is_accepted_by_the_fast_parse(forecaster: Forecaster) -> None:
    shifted = body(30).replace(b'"2024-03-01T00:00:00"', b'"2024-03-01T02:00:00+02:00"')
    (reply,) = answer_forecasts(forecaster, MODEL, [canonical_body("application/json", shifted)])
    assert reply.kind == "ok"
