"""Naive baselines a forecaster corrects: the network predicts forecast - baseline(window).

With baseline "last" every horizon step starts from the window's last value (the random walk); with
"seasonal" step h copies the value one season before it (the seasonal naive forecast). A network whose output
is zero therefore forecasts exactly its baseline, so a model that learns nothing useful stays at naive level
instead of below it. "none" keeps the plain network (every manifest written before baselines existed).
"""

from __future__ import annotations

import numpy as np
import torch

BASELINES = ("none", "last", "seasonal")


def naive_lags(horizon: int, season: int) -> np.ndarray:
    """How far back from the origin each horizon step copies from: [H]; season 1 is the random walk."""
    steps = np.arange(horizon)
    lags: np.ndarray = season * (steps // season + 1) - steps
    return lags


def baseline_lags(kind: str, season: int, horizon: int) -> np.ndarray | None:
    """How far back from the origin the baseline copies each horizon step from: [H] (None for "none")."""
    if kind == "none":
        return None
    return naive_lags(horizon, season if kind == "seasonal" else 1)


def baseline_forecast(windows: torch.Tensor, kind: str, season: int, horizon: int) -> torch.Tensor | None:
    """The baseline's forecast from each window: [B, L] -> [B, H] (None for "none")."""
    lag_of_step = baseline_lags(kind, season, horizon)  # [H]
    if lag_of_step is None:
        return None
    index = torch.from_numpy(windows.shape[1] - lag_of_step)  # [H] positions inside the window
    return windows[:, index]  # [B, L] -> [B, H]
