"""Online interval calibration: the calibrator holds its level through a shift, actuals fed over HTTP (or appended
to a model-bound stream) correct the next forecasts' intervals, and the calibration survives a server restart."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import NetworkConfig
from app.forecasting.online_calibration import OnlineCalibrator
from app.forecasting.quantiles import DEFAULT_QUANTILES
from app.forecasting.scaling import Scaling
from app.serving.inference import SeriesInput
from app.serving.online_intervals import OnlineIntervals, SeriesCalibration, fold
from tests.conftest import synthetic_frame

LEVELS = (50.0, 80.0, 90.0, 95.0)


def test_calibrator_holds_coverage_when_the_variance_doubles() -> None:
    """Forecast bands calibrated for N(0, 1); a third of the way in the noise's standard deviation doubles
    (variance x4), later it comes back. Coverage of the bands as answered stays at the level after each change."""
    rng = np.random.default_rng(0)
    points, horizon = 6000, 2
    sd = np.select([np.arange(points) < 2000, np.arange(points) < 4000], [1.0, 2.0], 1.0)
    actual = rng.normal(0.0, sd)
    z = np.array([NormalDist().inv_cdf(0.5 + level / 200.0) for level in LEVELS])  # [L]
    calibrator = OnlineCalibrator(horizon, LEVELS)
    covered = np.zeros((points, 2), dtype=bool)  # levels 80, 95 at step 1, as answered before the actual came
    for t in range(points):
        factors = calibrator.factors([80.0, 95.0], 1)  # [2, 1, 2]
        half = z[[1, 3]]
        covered[t] = (-factors[0, 0] * half <= actual[t]) & (actual[t] <= factors[1, 0] * half)
        origins = min(t, horizon)  # forecasts from positions t - 2 and t - 1 reach the actual at t
        calibrator.update(
            np.zeros((origins, horizon)),
            np.broadcast_to(-z, (origins, horizon, 4)),
            np.broadcast_to(z, (origins, horizon, 4)),
            actual[t : t + 1],
        )
    for start, end in ((2000, 4000), (4000, 6000)):
        coverage = covered[start + 300 : end].mean(axis=0)
        assert abs(coverage[0] - 0.80) < 0.02 and abs(coverage[1] - 0.95) < 0.02, (start, coverage)
    assert calibrator.observations == points - 1 and calibrator.position == points
    assert 0.7 < calibrator.factors([80.0], 1)[0, 0, 0] < 1.4  # back near the training band


def test_calibrator_state_round_trips_and_refuses_bad_input() -> None:
    calibrator = OnlineCalibrator(3, LEVELS)
    band = np.ones((2, 3, 4))
    calibrator.update(np.zeros((2, 3)), -band, band, np.array([5.0, 5.0, 0.0]))  # origins at positions 0, 1
    restored = OnlineCalibrator.from_state(calibrator.to_state())
    assert np.array_equal(restored.log_factors, calibrator.log_factors)
    assert np.array_equal(restored.issued, calibrator.issued)
    assert restored.observations == calibrator.observations == 2  # positions 1 and 2 resolved forecasts
    assert restored.position == 3
    with pytest.raises(ValueError, match="median"):
        calibrator.update(np.zeros((2, 4)), -band, band, np.zeros(2))
    with pytest.raises(ValueError, match="origins"):
        calibrator.update(np.zeros((2, 3)), -band, band, np.zeros(0))
    with pytest.raises(ValueError, match="version"):
        OnlineCalibrator.from_state({**calibrator.to_state(), "version": 99})


def shifted_series(points: int = 400) -> pd.DataFrame:
    """The tiny model's kind of series (daily cycle, noise 0.3) with 10x the noise."""
    frame = synthetic_frame(points=points, seed=5, start="2025-01-01")
    rng = np.random.default_rng(1)
    frame["value"] = frame["value"] + rng.normal(0.0, 3.0, points)
    return frame


def payload(frame: pd.DataFrame, series_id: str = "plant") -> dict[str, Any]:
    return {
        "id": series_id,
        "values": frame["value"].round(6).tolist(),
        "timestamps": [stamp.isoformat() for stamp in frame["timestamp"]],
    }


def test_actuals_fed_over_http_widen_the_next_forecasts_and_survive_a_restart(
    models_dir: Path, server_factory: Callable[..., Any]
) -> None:
    frame = shifted_series()
    server = server_factory(models_dir)
    with server.client() as client:
        before = client.post("/v1/models/tiny/forecast", json={"series": [payload(frame[-24:])]})
        assert before.status_code == 200, before.text
        assert before.json()["forecasts"][0]["calibration"] == {"intervals": "training", "observations": 0}
        for start in range(0, len(frame), 50):  # fed in order, in batches
            fed = client.post(
                "/v1/models/tiny/actuals", json={"series": [payload(frame[start : start + 50])]}
            )
            assert fed.status_code == 200, fed.text
        body = fed.json()
        assert body["model"]["name"] == "tiny" and body["series"][0]["observations"] == len(frame) - 24
        again = client.post("/v1/models/tiny/actuals", json={"series": [payload(frame[-10:])]})
        assert again.json()["series"][0] == {
            "id": "plant",
            "accepted": 0,
            "ignored": 10,
            "resolved": 0,
            "observations": len(frame) - 24,
        }
        missing = client.post("/v1/models/tiny/actuals", json={"series": [{"id": "x", "values": [1.0] * 30}]})
        assert missing.status_code == 422 and "timestamps" in missing.text
        after = client.post("/v1/models/tiny/forecast", json={"series": [payload(frame[-24:])]}).json()
        # a stream bound to the model: its readings are the actuals of the series named like the stream
        assert client.put("/v1/streams/line-7", json={"model": "tiny"}).status_code in (200, 201)
        readings = [
            {"timestamp": stamp.isoformat(), "value": round(value, 6)}
            for stamp, value in zip(frame["timestamp"][:60], frame["value"][:60], strict=True)
        ]
        for start in range(0, 60, 20):
            appended = client.post("/v1/streams/line-7/points", json={"points": readings[start : start + 20]})
            assert appended.status_code == 200, appended.text
        streamed = client.post(
            "/v1/models/tiny/forecast", json={"series": [payload(frame[36:60], "line-7")]}
        ).json()
        other = client.post(
            "/v1/models/tiny/forecast", json={"series": [payload(frame[-24:], "elsewhere")]}
        ).json()
    online = after["forecasts"][0]
    assert online["calibration"] == {"intervals": "online", "observations": len(frame) - 24}
    assert other["forecasts"][0]["calibration"]["intervals"] == "training"
    assert streamed["forecasts"][0]["calibration"] == {"intervals": "online", "observations": 60 - 24}
    trained = before.json()["forecasts"][0]
    assert online["mean"] == trained["mean"]
    for fixed, corrected in zip(trained["intervals"], online["intervals"], strict=True):
        assert np.mean(np.subtract(corrected["upper"], corrected["lower"])) > 1.1 * np.mean(
            np.subtract(fixed["upper"], fixed["lower"])
        )
    server.stop()

    restarted = server_factory(models_dir)
    with restarted.client() as client:
        reread = client.post("/v1/models/tiny/forecast", json={"series": [payload(frame[-24:])]}).json()
    assert reread["forecasts"][0] == online


def test_stored_calibrations_per_model_version_are_capped(database: Any) -> None:
    """Beyond `max_series` rows for a model version, the least recently fed series' row goes."""
    intervals = OnlineIntervals(database, pool=None, max_series=2)  # type: ignore[arg-type]
    state = SeriesCalibration(OnlineCalibrator(2, LEVELS), np.zeros(0), np.zeros(0, dtype=np.int64))
    for series_id in ("a", "b", "c"):
        intervals._write("m", 1, series_id, state)
    intervals._write("m", 2, "a", state)  # another version has its own cap
    assert intervals._read("m", 1, "a") is None
    assert intervals._read("m", 1, "c") is not None and intervals._read("m", 2, "a") is not None
    assert set(intervals._load_many("m", 1, ["a", "b", "c"])) == {"b", "c"}


def _fold_in_pieces(
    forecaster: Forecaster, state: SeriesCalibration, values: np.ndarray, cuts: list[int]
) -> SeriesCalibration:
    stamps = np.datetime64("2024-01-01T00:00", "ns") + np.arange(len(values)) * np.timedelta64(1, "h")
    for start, end in itertools.pairwise(cuts):
        state, _ = fold(forecaster, state, SeriesInput("s", values[start:end], stamps[start:end]))
        state = SeriesCalibration.from_json(state.to_json())
    return state


def test_a_feed_reuses_the_kept_forecasts_and_a_version_1_state_recomputes_them() -> None:
    """The forecasts from the last H origins travel with the state (a feed runs the network from its new origins
    only); the calibration equals one fed in other pieces, and a state stored before them (version 1) goes on."""
    spec = ForecasterSpec(
        window=12,
        horizon=4,
        frequency="h",
        scaling=Scaling("instance", 0.0, 1.0, 1e-6),
        network=NetworkConfig("gru", 1, 8, 1, 4, len(DEFAULT_QUANTILES)),
    )
    forecaster = Forecaster.create(spec, seed=0)
    values = np.sin(np.arange(300) / 5.0) + np.random.default_rng(0).normal(0.0, 0.3, 300)
    small = _fold_in_pieces(forecaster, SeriesCalibration.fresh(forecaster), values, list(range(0, 301, 3)))
    large = _fold_in_pieces(forecaster, SeriesCalibration.fresh(forecaster), values, [0, 7, 150, 151, 300])
    assert small.forecasts.shape == (4, 4, len(DEFAULT_QUANTILES))
    assert small.calibrator.observations == large.calibrator.observations == 300 - 12
    np.testing.assert_allclose(small.calibrator.log_factors, large.calibrator.log_factors, atol=1e-6)

    halfway = _fold_in_pieces(forecaster, SeriesCalibration.fresh(forecaster), values, [0, 7, 150])
    stored = json.loads(halfway.to_json())
    version_1 = {**{k: v for k, v in stored.items() if k != "forecasts"}, "version": 1}
    upgraded = SeriesCalibration.from_json(json.dumps(version_1))
    assert upgraded.forecasts.shape[0] == 0  # recomputed on its next feed
    finished = _fold_in_pieces(forecaster, upgraded, values, [150, 151, 300])
    assert finished.calibrator.observations == large.calibrator.observations
    np.testing.assert_allclose(finished.calibrator.log_factors, large.calibrator.log_factors, atol=1e-6)
