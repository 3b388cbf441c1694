"""Quantile levels, the pinball loss and the mapping from interval levels to quantile pairs."""

from __future__ import annotations

import bisect
from functools import lru_cache

import numpy as np
import torch

DEFAULT_QUANTILES: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)
MEDIAN = 0.5


def pinball_loss(predicted: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Mean pinball loss of quantile forecasts `predicted` [B, H, Q] against `target` [B, H]."""
    error = target.unsqueeze(-1) - predicted  # [B, H] -> [B, H, 1] - [B, H, Q] -> [B, H, Q]
    return torch.maximum(quantiles * error, (quantiles - 1.0) * error).mean()


def interval_quantiles(level: float) -> tuple[float, float]:
    """The (lower, upper) quantiles of a central prediction interval of `level` percent."""
    tail = (1.0 - level / 100.0) / 2.0
    return tail, 1.0 - tail


def available_levels(quantiles: tuple[float, ...]) -> list[float]:
    """Interval levels (percent) whose two bounds are both among `quantiles`."""
    present = {round(q, 6) for q in quantiles}
    levels = []
    for q in quantiles:
        if q < MEDIAN and round(1.0 - q, 6) in present:
            levels.append(round((1.0 - 2.0 * q) * 100.0, 6))
    return sorted(levels)


@lru_cache(maxsize=256)
def _interpolation(quantiles: tuple[float, ...], target: float) -> tuple[int, int, float]:
    """Neighbouring quantile indices and the weight of the upper one (clamped to the grid's range)."""
    upper = min(max(bisect.bisect_left(quantiles, target), 1), len(quantiles) - 1)
    low, high = quantiles[upper - 1], quantiles[upper]
    return upper - 1, upper, min(max((target - low) / (high - low), 0.0), 1.0)


def interpolate_quantile(values: np.ndarray, quantiles: tuple[float, ...], target: float) -> np.ndarray:
    """Linearly interpolate the forecast at quantile `target` from `values` [..., Q] (clamped to the range)."""
    lower, upper, weight = _interpolation(tuple(quantiles), target)
    return values[..., lower] * (1.0 - weight) + values[..., upper] * weight


@lru_cache(maxsize=256)
def interval_interpolation(
    quantiles: tuple[float, ...], levels: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolation of every interval bound at once: for `levels` [K] the (lower, upper) quantile indices and
    upper weights [2K] in the order lower(level 0), upper(level 0), lower(level 1), ..."""
    targets = [bound for level in levels for bound in interval_quantiles(level)]
    lower, upper, weight = zip(*(_interpolation(quantiles, target) for target in targets), strict=True)
    return np.array(lower), np.array(upper), np.array(weight, dtype=np.float32)
