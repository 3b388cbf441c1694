"""Forecast bodies answered where the model runs: parse, check, one forward pass, encoded answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.api.forecast_answers import answer_forecasts
from app.forecasting.forecaster import Forecaster
from app.registry.factory import open_registry
from app.serving.recursion import horizon_limit
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


def test_a_batch_of_bodies_is_answered_in_order_with_one_forward_pass(forecaster: Forecaster) -> None:
    calls = []
    original = forecaster.predict

    def counting(windows: np.ndarray, calendar: np.ndarray | None) -> np.ndarray:
        calls.append(len(windows))
        return original(windows, calendar)

    forecaster.predict = counting  # type: ignore[method-assign]
    try:
        replies = answer_forecasts(
            forecaster, MODEL, [body(30, "a"), body(40, "b", horizon=2, levels=[50]), body(30, "c")]
        )
    finally:
        forecaster.predict = original  # type: ignore[method-assign]
    assert calls == [3]
    assert [r.kind for r in replies] == ["ok", "ok", "ok"] and [r.series for r in replies] == [1, 1, 1]
    first, second = (json.loads(r.body) for r in replies[:2])
    assert first["model"] == MODEL and first["forecasts"][0]["id"] == "a"
    assert len(first["forecasts"][0]["mean"]) == forecaster.spec.horizon
    assert [i["level"] for i in first["forecasts"][0]["intervals"]] == [80.0, 95.0]
    assert (
        len(second["forecasts"][0]["mean"]) == 2 and second["forecasts"][0]["intervals"][0]["level"] == 50.0
    )


def test_unparseable_bodies_are_left_to_the_api_and_bad_requests_name_the_problem(
    forecaster: Forecaster,
) -> None:
    bodies = [b'{"series": [', body(30, levels=[80, float("nan")]), body(5), body(30)]
    replies = answer_forecasts(forecaster, MODEL, bodies)
    assert [r.kind for r in replies] == ["reparse", "reparse", "invalid", "ok"]
    assert "at least" in replies[2].detail and replies[2].fields["field"] == "series.0.values"


def test_too_long_a_horizon_is_invalid_not_a_crash(forecaster: Forecaster) -> None:
    too_long = horizon_limit(forecaster) + 1  # beyond what recursion (app.serving.recursion) answers
    (reply,) = answer_forecasts(forecaster, MODEL, [body(30, horizon=too_long)])
    assert reply.kind == "invalid" and reply.fields["field"] == "horizon"
