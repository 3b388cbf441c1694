"""How the timing of a reading is handled: the typical interval, gaps, duplicates, late and missing readings.

Real feeds arrive with jittered intervals, gaps, repeated and late stamps and missing values. The detector
learns the typical interval (the median of the intervals it has seen, refreshed at every refit) and classifies
each reading by its interval `k` in typical intervals since the previous reading it scored:

    regular     k <= 1.5     scored as the next step (jitter is normal)
    gap         k <= 12      the forecaster is told the gap: the band widens by sqrt(k)
    reanchored  k > 12       the history is too old to forecast from: the difference inputs restart at zero
                             (the band widens by sqrt(12)) and the reading is scored against the last value
    duplicate   same stamp as the previous reading: the first reading of a timestamp is kept and scored; a
                later one is stored, answered with `score: null`, and not fed to the detector
    late        before the previous reading: stored and answered with `score: null`, not fed to the detector
                (a detector cannot go back in time; the batch is not refused)
    missing     `value: null`: stored and answered with `score: null`; the next reading sees the gap
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from app.anomaly.points import Sampling

JITTER = 1.5  # intervals up to this many typical intervals are regular
REANCHOR_AFTER = 12.0  # intervals beyond this many typical intervals restart the difference inputs
SECONDS_PER_DAY = 86_400.0


def typical_interval(intervals: Iterable[float]) -> float:
    """Median of the positive intervals (seconds); 0 when there is none (no timestamps, or one reading)."""
    positive = sorted(x for x in intervals if x > 0)
    return positive[len(positive) // 2] if positive else 0.0


def classify(interval: float, typical: float) -> tuple[Sampling, float]:
    """(sampling, band widening) for a reading `interval` seconds after the previous scored one."""
    if typical <= 0 or interval <= 0:
        return "regular", 1.0
    steps = interval / typical
    if steps <= JITTER:
        return "regular", 1.0
    if steps <= REANCHOR_AFTER:
        return "gap", math.sqrt(steps)
    return "reanchored", math.sqrt(REANCHOR_AFTER)


def seasonal_periods(typical: float) -> tuple[float, ...]:
    """Seasonal periods in seconds the forecaster may use: a day and a week for sub-daily sampling, a week for
    daily to weekly sampling, none otherwise (or without timestamps)."""
    if 0 < typical < SECONDS_PER_DAY:
        return (SECONDS_PER_DAY, 7 * SECONDS_PER_DAY)
    if SECONDS_PER_DAY <= typical < 7 * SECONDS_PER_DAY:
        return (7 * SECONDS_PER_DAY,)
    return ()
