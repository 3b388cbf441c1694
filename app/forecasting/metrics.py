"""Forecast accuracy: MAE, RMSE, MASE against seasonal-naive and random-walk scales, interval coverage."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.forecasting.baselines import naive_lags


def mae(errors: np.ndarray) -> float:
    return float(np.mean(np.abs(errors)))


def rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))


@dataclass(frozen=True)
class NaiveScale:
    """The denominator of MASE: the in-sample MAE of the lag-`lag` naive forecast, or why there is none."""

    value: float | None
    reason: str | None = None  # set exactly when `value` is None


def naive_scale(training_values: np.ndarray, lag: int) -> NaiveScale:
    """In-sample MAE of the lag-`lag` naive forecast.

    Undefined (value None, with the reason) when there are at most `lag` training values, or when that MAE is
    0: the training values repeat exactly at that lag (a constant or all-zero stretch, as intermittent series
    have), so every scaled error would divide by zero.
    """
    if len(training_values) <= lag:
        return NaiveScale(
            None, f"only {len(training_values)} training rows, too few for a lag-{lag} naive forecast"
        )
    scale = float(np.mean(np.abs(training_values[lag:] - training_values[:-lag])))
    if not scale > 0.0 or not math.isfinite(scale):
        return NaiveScale(
            None,
            f"the training rows repeat exactly at lag {lag} (constant or all zero), so the scale, the "
            f"lag-{lag} naive forecast's training MAE, is 0",
        )
    return NaiveScale(scale)


def scaled_mae(errors: np.ndarray, scales: np.ndarray) -> float | None:
    """MASE: the mean of |error| / scale, errors [K, H] and one scale per row [K] (NaN where undefined).

    Rows without a scale are left out; None when no row has one (never NaN or inf).
    """
    defined = np.isfinite(scales)  # [K]
    if not defined.any():
        return None
    return float(np.mean(np.abs(errors[defined]) / scales[defined, None]))  # [K', H] / [K', 1]


def seasonal_naive_forecast(values: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last observed season: origins [K] -> [K, H]; season 1 is the random walk."""
    lags = naive_lags(horizon, season)  # [H]: how far back each step copies from
    forecast: np.ndarray = values[origins[:, None] - lags[None, :]]  # [K, 1] - [1, H] -> [K, H]
    return forecast


def interval_coverage(targets: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    return float(np.mean((targets >= lower) & (targets <= upper)))
