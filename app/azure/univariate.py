"""Azure's univariate detection (entire series, last point) answered by the project's own detector.

One fold: a fresh `Detector` reads the learning context (`app.azure.context`), then the prepared series, and its
scored points become Azure's fields:

    expectedValues          the detector's expected value (its self-learned one-step forecast)
    upperMargins/lower...   the distance from it to the detector's band (95% of recent errors)
    isAnomaly               the detector's flag, at the mapped sensitivity, capped by maxAnomalyRatio
    isPositive/Negative     the flag's direction (above / below the expected value)
    severity                the detector's score in [0, 1] for a flagged point, 0 otherwise
    period                  the shortest season the detector's forecaster uses (a day or a week, in points),
                            when the series covers it twice; 0 otherwise

Sensitivity: Azure's 0-99 (default 99) maps linearly onto the project's 0-0.5, `azure / 198`: Azure's default
is the project's default (about 3 false alarms per 1,000 normal points) and each 20 points lower roughly halves
the false-alarm rate, down to 1 in 10,000 at 0. maxAnomalyRatio (default 0.25, as Azure) keeps at most that
fraction of the request's points flagged, the highest scores first. The last-point detection learns its context
from the points before the last one only, so the judged point never teaches the detector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from app.anomaly.detector import Detector, DetectorConfig
from app.anomaly.points import ScoredPoint
from app.azure.context import MIN_CONTEXT, context_length, mirrored_context
from app.azure.series import PreparedSeries

AZURE_DEFAULT_SENSITIVITY: Final = 99
AZURE_MAX_SENSITIVITY: Final = 99
DEFAULT_MAX_ANOMALY_RATIO: Final = 0.25
SUGGESTED_WINDOW: Final = MIN_CONTEXT + 1  # a full learning period of real readings, then the judged one
EARLIEST: Final = datetime(1, 1, 1)
WEEK: Final = timedelta(weeks=1)


def to_sensitivity(azure: int | None) -> float:
    """Azure's sensitivity (0-99, None: its default 99) on the project's scale (0-0.5)."""
    value = AZURE_DEFAULT_SENSITIVITY if azure is None else azure
    return value / (2.0 * AZURE_MAX_SENSITIVITY)


@dataclass(frozen=True)
class UnivariateResult:
    """Azure's per-point fields for the request's points, in order."""

    period: int
    values: list[float]
    expected: list[float]
    upper_margins: list[float]
    lower_margins: list[float]
    is_anomaly: list[bool]
    is_positive: list[bool]
    is_negative: list[bool]
    severity: list[float]


def detect_entire(
    series: PreparedSeries, sensitivity: int | None = None, max_anomaly_ratio: float | None = None
) -> UnivariateResult:
    """Every point of the request scored by a detector that learned the series' mirrored context."""
    return _detect(series, len(series.values), sensitivity, max_anomaly_ratio)


def detect_last(
    series: PreparedSeries, sensitivity: int | None = None, max_anomaly_ratio: float | None = None
) -> UnivariateResult:
    """As `detect_entire`, but the context is learned from the points before the last one."""
    return _detect(series, len(series.values) - 1, sensitivity, max_anomaly_ratio)


def fold(series: PreparedSeries, known: int, sensitivity: float) -> tuple[list[ScoredPoint], Detector]:
    """The detector, after the context learned from the first `known` readings, folded over the series.

    The detector only compares times, so they are moved to start after `EARLIEST` (whole weeks, keeping the
    day and the weekday): a context reaching far back from a series in the 17th century stays in the calendar."""
    stamps, values = series.stamps, series.values
    head = None if stamps is None else stamps[:known]
    length = context_length(known)
    offsets, context_values = mirrored_context(head, values[:known], length)
    detector = Detector(DetectorConfig(learning_points=length), sensitivity)
    if stamps is None or offsets is None:
        for value in context_values:
            detector.update(None, value)
        return [detector.update(None, value) for value in values], detector
    origin = EARLIEST + WEEK * (-min(offsets, default=-WEEK) // WEEK + 1)
    for offset, value in zip(offsets, context_values, strict=True):
        detector.update(origin + offset, value)
    first = stamps[0]
    return [
        detector.update(origin + (stamp - first), value) for stamp, value in zip(stamps, values, strict=True)
    ], detector


def season_points(detector: Detector, points: int) -> int:
    """The shortest season the detector's forecaster uses, in readings, when the series of `points` readings
    covers it twice (0 otherwise: none, no timestamps, or a season known from the learning context only)."""
    model = detector.model
    if model is None or not model.periods or detector.typical <= 0:
        return 0
    season = round(min(model.periods) / detector.typical)
    return season if 2 * season <= points else 0


def _detect(
    series: PreparedSeries, known: int, sensitivity: int | None, max_anomaly_ratio: float | None
) -> UnivariateResult:
    scored, detector = fold(series, known, to_sensitivity(sensitivity))
    points = [scored[position] for position in series.reported]
    ratio = DEFAULT_MAX_ANOMALY_RATIO if max_anomaly_ratio is None else max_anomaly_ratio
    flagged = _capped_flags(points, math.floor(ratio * len(points)))
    values = [float(point.value if point.value is not None else math.nan) for point in points]
    expected = [_or(point.expected, value) for point, value in zip(points, values, strict=True)]
    upper = [_or(point.upper, mean) - mean for point, mean in zip(points, expected, strict=True)]
    lower = [mean - _or(point.lower, mean) for point, mean in zip(points, expected, strict=True)]
    return UnivariateResult(
        period=season_points(detector, len(series.values)),
        values=values,
        expected=expected,
        upper_margins=upper,
        lower_margins=lower,
        is_anomaly=flagged,
        is_positive=[flag and point.direction == "up" for flag, point in zip(flagged, points, strict=True)],
        is_negative=[flag and point.direction == "down" for flag, point in zip(flagged, points, strict=True)],
        severity=[
            _or(point.score, 0.0) if flag else 0.0 for flag, point in zip(flagged, points, strict=True)
        ],
    )


def _capped_flags(points: Sequence[ScoredPoint], cap: int) -> list[bool]:
    """The detector's flags, keeping only the `cap` highest-scored ones (earlier first among equals)."""
    flagged = [index for index, point in enumerate(points) if point.is_anomaly]
    kept = set(sorted(flagged, key=lambda index: (-_or(points[index].score, 0.0), index))[:cap])
    return [index in kept for index in range(len(points))]


def _or(value: float | None, default: float) -> float:
    return default if value is None else float(value)
