"""Azure's change-point detection, answered by a level-shift test on the detector's one-step errors.

The detector forecasts differences, so it follows a new level from the second reading after a shift: its
one-step errors show the shift once, as a single large error, and are back to noise right after. A spike shows
as a large error followed by one of the opposite sign (the return), and noise as errors that cancel. So the
errors summed over the `window` readings from a point estimate the level change at that point: a shift keeps the
sum, a spike cancels it. The test statistic is that sum over its noise, `z = |sum| / (sigma * sqrt(window))`, with
`sigma` the robust scale (MAD) of all the series' errors; the same sum taken from the reading before must
pass too (the return from a spike just before cancels it), the smaller `z` counts, and the point's confidence
is `1 - p`, `p` the two-sided normal tail of `z`.

A point is a change point when its confidence is at least `1 - alpha(threshold)` (`alpha` being the project's
sensitivity scale, `app.anomaly.sensitivity`: threshold 0.01 -> 1.1e-4, 0.5 -> 3.2e-3, 0.99 -> 0.093, so a lower
threshold accepts fewer change points, as in Azure), its own error is the largest within `window` readings on
either side and has the sign of the sum (one change point per shift, where it happens). The first point and the
last `window - 1` (too few readings after them to tell a shift from a spike) have confidence 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from app.anomaly.sensitivity import DEFAULT_SENSITIVITY, sensitivity_to_alpha
from app.azure.context import MAD_TO_SIGMA
from app.azure.errors import INVALID_MODEL_ARGUMENT, AzureError
from app.azure.grid import Granularity
from app.azure.series import PreparedSeries
from app.azure.univariate import fold, season_points

# Azure's default stable-trend windows per granularity (readings), capped by a quarter of the series
DEFAULT_WINDOWS: Final = {
    Granularity.YEARLY: 3,
    Granularity.MONTHLY: 6,
    Granularity.WEEKLY: 3,
    Granularity.DAILY: 5,
    Granularity.HOURLY: 24,
    Granularity.MINUTELY: 72,
    Granularity.SECONDLY: 72,
    Granularity.MICROSECOND: 100,
    Granularity.NONE: 100,
}
MIN_WINDOW: Final = 3


@dataclass(frozen=True)
class ChangePoints:
    period: int
    is_change_point: list[bool]
    confidence: list[float]


def default_window(granularity: Granularity, points: int) -> int:
    """Azure's default window for the granularity, at most a quarter of the series (at least 3)."""
    return max(MIN_WINDOW, min(DEFAULT_WINDOWS[granularity], points // 4))


def detect_change_points(
    series: PreparedSeries, window: int | None = None, threshold: float | None = None
) -> ChangePoints:
    """The detector folded over the series (as for entire detection), then the level-shift test."""
    scored, detector = fold(series, len(series.values), DEFAULT_SENSITIVITY)
    points = [scored[position] for position in series.reported]
    errors = [
        0.0 if point.value is None or point.expected is None else point.value - point.expected
        for point in points
    ]
    if window is not None and 2 * window >= len(points):
        raise AzureError(
            INVALID_MODEL_ARGUMENT,
            f"stableTrendWindow must be less than half the series' length ({len(points)} points); got {window}",
        )
    size = window or default_window(series.granularity, len(points))
    alpha = sensitivity_to_alpha(DEFAULT_SENSITIVITY if threshold is None else threshold)
    flags, confidence = level_shifts(errors, size, alpha)
    return ChangePoints(season_points(detector, len(series.values)), flags, confidence)


def level_shifts(errors: Sequence[float], window: int, alpha: float) -> tuple[list[bool], list[float]]:
    """(change point?, confidence) per point, from the detector's one-step errors (see module docstring)."""
    residuals = np.asarray(errors, dtype=float)
    count = len(residuals)
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(residuals - np.median(residuals))))
    sigma = max(sigma, 1e-12 * (1.0 + float(np.max(np.abs(residuals), initial=0.0))))
    sums = np.convolve(residuals, np.ones(window), mode="valid")  # sums[t] = errors[t : t + window]
    confidence = [0.0] * count
    flags = [False] * count
    for t in range(1, count - window + 1):
        with_previous = float(sums[t]) + float(residuals[t - 1])  # a spike just before cancels here
        z = min(abs(float(sums[t])) / math.sqrt(window), abs(with_previous) / math.sqrt(window + 1)) / sigma
        confidence[t] = math.erf(z / math.sqrt(2.0))
        around = np.abs(residuals[max(0, t - window) : t + window + 1])
        largest = abs(residuals[t]) >= float(np.max(around))
        flags[t] = confidence[t] >= 1.0 - alpha and largest and residuals[t] * sums[t] > 0
    return flags, confidence
