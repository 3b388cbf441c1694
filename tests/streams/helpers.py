"""Shared builders for the stream tests: random-weight forecasters and synthetic hourly data."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from app.anomaly import ConformalCalibrator
from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import NetworkConfig
from app.forecasting.quantiles import DEFAULT_QUANTILES
from app.forecasting.scaling import Scaling

START = datetime(2024, 1, 1)


def random_forecaster(
    window: int = 24,
    patch_len: int = 1,
    cell: str = "gru",
    calendar: bool = True,
    seed: int = 0,
    hidden: int = 16,
) -> Forecaster:
    features = ("hour_of_day", "day_of_week") if calendar else ()
    spec = ForecasterSpec(
        window=window,
        horizon=6,
        frequency="h",
        scaling=Scaling(mode="instance", global_loc=0.0, global_scale=1.0, floor=1e-6),
        network=NetworkConfig(
            cell=cell,
            input_size=1,
            hidden_size=hidden,
            num_layers=2,
            horizon=6,
            num_quantiles=len(DEFAULT_QUANTILES),
        ),
        patch_len=patch_len,
        calendar_features=features,
    )
    forecaster = Forecaster.create(spec, seed=seed)
    forecaster.network.eval()
    return forecaster


def normal_calibrator(seed: int = 0) -> ConformalCalibrator:
    rng = np.random.default_rng(seed)
    return ConformalCalibrator().fit(np.abs(rng.normal(0.0, 0.8, 2000)))


def hourly_series(points: int, seed: int = 0) -> tuple[list[datetime], np.ndarray]:
    rng = np.random.default_rng(seed)
    hours = np.arange(points)
    values = 10.0 + 3.0 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.3, points)
    return [START + timedelta(hours=int(h)) for h in hours], values
