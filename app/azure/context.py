"""The learning context of an Azure request: the series mirrored back in time, its spikes removed.

Azure answers a series of 12 points; the project's detector learns from at least `MIN_LEARNING_POINTS` readings
and flags once about 100 scores are calibrated. So before the series itself the detector reads a context: the
series' own readings reflected about its first timestamp (bouncing between its ends when it is short), with the
same intervals, so it learns the series' scale, dynamics and score distribution and scores every real point,
the first one included, warm. Spikes are taken out of the context first (a Hampel filter: a reading further
than `HAMPEL_LIMIT` robust deviations from the median of its 7 neighbours becomes that median; the deviations' scale is floored by the differences'), so an anomaly
in the series is not learned as normal; a level shift survives the filter, as it should.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from app.anomaly.detector import DEFAULT_LEARNING_POINTS
from app.anomaly.sampling import seasonal_periods, typical_interval

MIN_CONTEXT: Final = DEFAULT_LEARNING_POINTS  # enough replayed scores to calibrate the flags from the start
MAX_CONTEXT: Final = 1000  # a longer context would only cost time: the detector's windows hold 1,000 readings
HAMPEL_HALF: Final = 3
HAMPEL_LIMIT: Final = 4.0
MAD_TO_SIGMA: Final = 1.4826


def context_length(points: int) -> int:
    """The learning period for a series of `points` readings: its length, within [100, 1,000]."""
    return min(max(points, MIN_CONTEXT), MAX_CONTEXT)


def mirrored_context(
    stamps: Sequence[datetime] | None, values: Sequence[float], length: int
) -> tuple[list[timedelta] | None, list[float]]:
    """`length` readings before the series (at least 2 readings), in time order, spikes removed (see module
    docstring), their times as (negative) offsets from the series' first stamp; None when it has no stamps."""
    clean = [float(value) for value in hampel(np.asarray(values, dtype=float))]
    if stamps is None:
        context = [clean[index] for index in _bounce(len(clean), length)]
        context.reverse()
        return None, context
    season = _block_season(stamps)
    if season is None:
        return _point_mirror(stamps, clean, length)
    return _block_mirror(stamps, clean, length, season)


def _block_season(stamps: Sequence[datetime]) -> timedelta | None:
    """The longest season of the detector's forecaster (a week, a day) that the series spans once in full."""
    typical = typical_interval((b - a).total_seconds() for a, b in itertools.pairwise(stamps))
    span = stamps[-1] - stamps[0] + timedelta(seconds=typical)
    fitting = [period for period in seasonal_periods(typical) if timedelta(seconds=period) <= span]
    return timedelta(seconds=max(fitting)) if fitting else None


def _point_mirror(
    stamps: Sequence[datetime], values: list[float], length: int
) -> tuple[list[timedelta], list[float]]:
    """The readings reflected about the first one, with the same intervals."""
    times: list[timedelta] = []
    context: list[float] = []
    previous, back = 0, timedelta(0)
    for index in _bounce(len(values), length):
        back += abs(stamps[index] - stamps[previous])
        times.append(-back)
        context.append(values[index])
        previous = index
    times.reverse()
    context.reverse()
    return times, context


def _block_mirror(
    stamps: Sequence[datetime], values: list[float], length: int, season: timedelta
) -> tuple[list[timedelta], list[float]]:
    """Whole seasons of the series in mirrored order, each in its own time order: the season before the
    series is a copy of its first one, the one before that of its second, and so on (bouncing at the last
    whole season). Seasonal lookups of the real readings then land on the same phase of the season."""
    first = stamps[0]
    blocks: list[list[tuple[timedelta, float]]] = []
    for stamp, value in zip(stamps, values, strict=True):
        block, offset = divmod(stamp - first, season)
        while block >= len(blocks):
            blocks.append([])
        blocks[block].append((offset, value))
    whole = max(1, len(blocks) - 1)  # the last season may be cut short: it is left out
    times: list[timedelta] = []
    context: list[float] = []
    for back, source in enumerate(_block_bounce(whole)):
        start = -season * (back + 1)
        for offset, value in reversed(blocks[source]):
            times.append(start + offset)
            context.append(value)
        if len(context) >= length:
            break
    times, context = times[:length], context[:length]
    times.reverse()
    context.reverse()
    return times, context


def _block_bounce(blocks: int) -> Iterator[int]:
    """0, 1, ..., blocks-1, blocks-1, ..., 0, 0, 1, ...: whole seasons reflected, going back in time."""
    cycle = list(range(blocks)) + list(range(blocks - 1, -1, -1))
    return (cycle[step % len(cycle)] for step in itertools.count())


def _bounce(points: int, length: int) -> list[int]:
    """Indexes 1, 2, ..., points-1, points-2, ..., 0, 1, ...: the reflection, going back in time."""
    cycle = list(range(1, points)) + list(range(points - 2, -1, -1))
    return [cycle[step % len(cycle)] for step in range(length)]


def hampel(values: np.ndarray) -> np.ndarray:
    """`values` with each spike replaced by the median of its neighbourhood (see module docstring)."""
    if len(values) <= HAMPEL_HALF:
        return values.copy()
    windows = sliding_window_view(np.pad(values, HAMPEL_HALF, mode="reflect"), 2 * HAMPEL_HALF + 1)
    medians = np.median(windows, axis=1)
    deviations = values - medians
    # floored by the differences' robust scale: on a smooth stretch the deviations from the median are ~0
    scale = MAD_TO_SIGMA * max(
        float(np.median(np.abs(deviations))), float(np.median(np.abs(np.diff(values))))
    )
    spikes = np.abs(deviations) > HAMPEL_LIMIT * scale
    return np.where(spikes, medians, values)
