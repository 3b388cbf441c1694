"""Forecasts beyond the trained horizon: the model's own medians fed back, marked as such, bounded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.api.forecast_answers import answer_forecasts
from app.forecasting.forecaster import Forecaster
from app.registry.factory import open_registry
from app.serving.recursion import MAX_HORIZON_FACTOR, horizon_limit
from app.settings import Settings

MODEL = {"name": "tiny", "version": 1}


@pytest.fixture(scope="module")
def forecaster(tiny_models_dir: Path) -> Forecaster:
    registry = open_registry(Settings(models_dir=tiny_models_dir))
    return registry.load(registry.get_version("tiny", 1)).forecaster


def series(n: int = 48) -> dict[str, object]:
    stamps = pd.date_range("2024-03-01", periods=n, freq="h")
    values = (10 + 3 * np.sin(2 * np.pi * np.arange(n) / 24)).round(3).tolist()
    return {"id": "a", "values": values, "timestamps": [s.isoformat() for s in stamps]}


def answer(forecaster: Forecaster, **extra: object) -> dict[str, object]:
    (reply,) = answer_forecasts(forecaster, MODEL, [json.dumps({"series": [series()], **extra}).encode()])
    assert reply.kind == "ok", reply.detail
    parsed: dict[str, object] = json.loads(reply.body)
    return parsed


def test_within_the_trained_horizon_nothing_is_recursive(forecaster: Forecaster) -> None:
    body = answer(forecaster, horizon=2)
    trained = forecaster.spec.horizon
    assert body["trained_horizon"] == trained and body["recursive"] is False
    assert body["recursive_from_step"] is None


def test_longer_horizons_feed_the_medians_back_with_the_calendar_advanced(forecaster: Forecaster) -> None:
    spec = forecaster.spec
    trained, steps = spec.horizon, spec.horizon * 2 + 3
    direct = answer(forecaster)["forecasts"][0]  # type: ignore[index]
    body = answer(forecaster, horizon=steps)
    assert body["recursive"] is True and body["recursive_from_step"] == trained + 1
    forecast = body["forecasts"][0]  # type: ignore[index]
    assert len(forecast["mean"]) == len(forecast["timestamps"]) == steps
    assert forecast["timestamps"][-1] == (
        pd.Timestamp("2024-03-02 23:00") + pd.Timedelta(hours=steps)
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    np.testing.assert_allclose(
        forecast["mean"][:trained], direct["mean"]
    )  # the first round is the direct one

    # the second round is the model's forecast from the window ending with the first round's medians
    raw = series()
    values = np.array(raw["values"], dtype=np.float32)  # type: ignore[arg-type]
    window = np.concatenate([values, np.array(direct["mean"], dtype=np.float32)])[-spec.window :]
    stamps = pd.DatetimeIndex(raw["timestamps"]).append(
        pd.DatetimeIndex(direct["timestamps"]).tz_localize(None)
    )  # type: ignore[arg-type]
    calendar = forecaster.calendar(stamps.values[-spec.window :][None])
    second = forecaster.predict(window[None], calendar)[0, :, spec.median_index]
    np.testing.assert_allclose(forecast["mean"][trained : 2 * trained], second, rtol=1e-5, atol=1e-5)

    # recursive intervals never get narrower than the last trained step's
    for interval, trained_interval in zip(forecast["intervals"], direct["intervals"], strict=True):
        width = np.array(interval["upper"]) - np.array(interval["lower"])
        last = trained_interval["upper"][-1] - trained_interval["lower"][-1]
        assert (width[trained:] >= last - 1e-5).all()
        assert (np.array(interval["lower"]) <= np.array(forecast["mean"]) + 1e-6).all()


def test_the_limit_is_ten_times_the_trained_horizon_and_named(forecaster: Forecaster) -> None:
    limit = horizon_limit(forecaster)
    assert limit == MAX_HORIZON_FACTOR * forecaster.spec.horizon
    assert len(answer(forecaster, horizon=limit)["forecasts"][0]["mean"]) == limit  # type: ignore[index]
    body = json.dumps({"series": [series()], "horizon": limit + 1}).encode()
    (reply,) = answer_forecasts(forecaster, MODEL, [body])
    assert reply.kind == "invalid"
    assert f"exceeds the limit of {limit}" in (reply.detail or "")
    assert reply.fields == {
        "field": "horizon",
        "value": limit + 1,
        "maximum": limit,
        "trained_horizon": forecaster.spec.horizon,
    }
