"""Forecast accuracy: MAE, RMSE, MASE against seasonal-naive and random-walk scales, interval coverage."""

from __future__ import annotations

import numpy as np


def mae(errors: np.ndarray) -> float:
    return float(np.mean(np.abs(errors)))


def rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))


def naive_scale(training_values: np.ndarray, lag: int) -> float:
    """In-sample MAE of the lag-`lag` naive forecast: the denominator of MASE."""
    if len(training_values) <= lag:
        return float("nan")
    return float(np.mean(np.abs(training_values[lag:] - training_values[:-lag])))


def seasonal_naive_forecast(values: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last observed season: origins [K] -> [K, H]; season 1 is the random walk."""
    steps = np.arange(horizon)
    lags = season * (steps // season + 1) - steps  # [H]: how far back each step copies from
    forecast: np.ndarray = values[origins[:, None] - lags[None, :]]  # [K, 1] - [1, H] -> [K, H]
    return forecast


def interval_coverage(targets: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    return float(np.mean((targets >= lower) & (targets <= upper)))
