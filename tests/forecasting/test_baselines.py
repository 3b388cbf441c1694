"""The network corrects a naive baseline: with a zero network the forecast is exactly the baseline."""

from datetime import datetime, timedelta

import numpy as np
import pytest
import torch

from app.forecasting.baselines import baseline_forecast, naive_lags
from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.metrics import seasonal_naive_forecast
from app.forecasting.network import NetworkConfig
from app.forecasting.scaling import Scaling
from app.serving.model_forecasts import ModelForecasts

QUANTILES = (0.1, 0.5, 0.9)


def spec(
    baseline: str, season: int = 1, window: int = 24, horizon: int = 10, patch: int = 4
) -> ForecasterSpec:
    network = NetworkConfig("gru", patch, 8, 1, horizon, len(QUANTILES))
    scaling = Scaling("instance", 0.0, 1.0, 1e-6)
    return ForecasterSpec(window, horizon, "h", scaling, network, patch, QUANTILES, (), baseline, season)


def windows(count: int = 5, window: int = 24) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (100 + rng.normal(0, 5, (count, window)).cumsum(axis=1)).astype(np.float32)


@pytest.mark.parametrize(("kind", "season"), [("last", 1), ("seasonal", 7), ("seasonal", 24)])
def test_untrained_network_forecasts_exactly_the_baseline(kind: str, season: int) -> None:
    forecaster = Forecaster.create(spec(kind, season), seed=0)
    inputs = windows()
    forecast = forecaster.predict(inputs)  # [B, H, Q]
    lag = season if kind == "seasonal" else 1
    values = inputs.reshape(-1)
    origins = np.arange(1, len(inputs) + 1) * inputs.shape[1]  # each window ends just before its origin
    expected = seasonal_naive_forecast(values, origins, 10, lag)  # [B, H]
    for q in range(len(QUANTILES)):
        np.testing.assert_allclose(forecast[:, :, q], expected, rtol=1e-5)


def test_a_trained_correction_is_added_to_the_baseline() -> None:
    forecaster = Forecaster.create(spec("last"), seed=0)
    with torch.no_grad():
        forecaster.network.head.bias.fill_(1.0)  # +1 window std on every step and quantile
    inputs = windows()
    forecast = forecaster.predict(inputs)
    shift = inputs.std(axis=1)[:, None] + inputs[:, -1:]  # [B, 1]
    np.testing.assert_allclose(forecast[:, :, 1], np.broadcast_to(shift, (5, 10)), rtol=1e-5)


def test_baseline_forecast_reads_the_naive_lags() -> None:
    window = torch.arange(12.0)[None, :]  # [1, 12]
    assert baseline_forecast(window, "none", 1, 3) is None
    assert baseline_forecast(window, "last", 5, 3).tolist() == [[11.0, 11.0, 11.0]]
    assert baseline_forecast(window, "seasonal", 4, 6).tolist() == [[8.0, 9.0, 10.0, 11.0, 8.0, 9.0]]
    assert naive_lags(6, 4).tolist() == [4, 3, 2, 1, 4, 3]


def test_spec_without_baseline_is_the_plain_network() -> None:
    plain = spec("none")
    raw = plain.to_dict()
    assert "baseline" not in raw and "season" not in raw  # old layout, old bytes
    assert ForecasterSpec.from_dict(raw) == plain
    seasonal = spec("seasonal", 24)
    assert ForecasterSpec.from_dict(seasonal.to_dict()) == seasonal


def test_plain_network_keeps_its_random_head() -> None:
    """Models without a baseline are created exactly as before (same seeded weights)."""
    assert Forecaster.create(spec("none"), seed=0).network.head.weight.abs().sum() > 0


@pytest.mark.parametrize("kind", ["none", "last", "seasonal"])
def test_spec_checks_baseline_and_season(kind: str) -> None:
    with pytest.raises(ValueError, match="season"):
        spec(kind, season=25)
    with pytest.raises(ValueError, match="baseline"):
        spec("drift")


@pytest.mark.parametrize(("kind", "season"), [("last", 1), ("seasonal", 8)])
def test_stream_forecast_adds_the_baseline_like_predict(kind: str, season: int) -> None:
    forecaster = Forecaster.create(spec(kind, season), seed=0)
    with torch.no_grad():
        forecaster.network.head.bias.normal_()
    values = windows(1)[0]
    stream = ModelForecasts(forecaster)
    start = datetime(2024, 1, 1)
    for index, value in enumerate(values):
        stream.observe(start + timedelta(hours=index), float(value))
    expected = forecaster.predict(values[None, :])[0, 0, 1]  # lead-1 median of the same window
    assert stream.expect() == pytest.approx(float(expected), rel=1e-6)
