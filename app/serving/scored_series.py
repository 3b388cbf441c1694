"""One series' batch detection in columnar form: the fields of its `ScoredPoint`s as arrays.

A 200,000-point detection held as `ScoredPoint` objects costs hundreds of bytes per point; here a point costs
about 35 bytes, and `points(start, stop)` materialises the `ScoredPoint`s of one range (bitwise the ones the
detector returned: floats round-trip through float64 arrays exactly, None is stored as NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import numpy as np

from app.anomaly.points import Sampling, ScoredPoint
from app.serving.inference import SeriesInput
from app.timestamps import datetime64s_to_naive

SAMPLINGS: tuple[Sampling, ...] = get_args(Sampling)
DIRECTIONS: tuple[str | None, ...] = (None, "up", "down")


@dataclass(frozen=True)
class ScoredSeries:
    """The input series and, per point, its expected value, band, score, flag, direction and sampling."""

    item: SeriesInput
    expected: np.ndarray  # [N] float64, NaN = None (also lower, upper, score)
    lower: np.ndarray
    upper: np.ndarray
    score: np.ndarray
    is_anomaly: np.ndarray  # [N] bool
    direction: np.ndarray  # [N] uint8 codes into DIRECTIONS
    sampling: np.ndarray  # [N] uint8 codes into SAMPLINGS

    @property
    def anomalies(self) -> int:
        return int(self.is_anomaly.sum())

    def __len__(self) -> int:
        return len(self.item.values)

    def points(self, start: int = 0, stop: int | None = None) -> list[ScoredPoint]:
        span = slice(start, len(self) if stop is None else min(stop, len(self)))
        stamps = self.item.timestamps
        count = len(self.item.values[span])
        times = [None] * count if stamps is None else datetime64s_to_naive(stamps[span])
        columns = zip(
            times,
            _optional(self.item.values[span]),
            _optional(self.expected[span]),
            _optional(self.lower[span]),
            _optional(self.upper[span]),
            _optional(self.score[span]),
            self.is_anomaly[span].tolist(),
            [DIRECTIONS[code] for code in self.direction[span].tolist()],
            [SAMPLINGS[code] for code in self.sampling[span].tolist()],
            strict=True,
        )
        return [ScoredPoint(start + k, *fields) for k, fields in enumerate(columns)]


class ScoredColumns:
    """Collects one series' `ScoredPoint`s, in order, into a `ScoredSeries`."""

    def __init__(self, item: SeriesInput) -> None:
        size = len(item.values)
        self.item = item
        self.floats = np.full((4, size), np.nan)  # expected, lower, upper, score
        self.is_anomaly = np.zeros(size, dtype=bool)
        self.direction = np.zeros(size, dtype=np.uint8)
        self.sampling = np.zeros(size, dtype=np.uint8)
        self._directions = {name: code for code, name in enumerate(DIRECTIONS)}
        self._samplings = {name: code for code, name in enumerate(SAMPLINGS)}

    def put(self, index: int, point: ScoredPoint) -> None:
        for row, field in enumerate((point.expected, point.lower, point.upper, point.score)):
            if field is not None:
                self.floats[row, index] = field
        self.is_anomaly[index] = point.is_anomaly
        self.direction[index] = self._directions[point.direction]
        self.sampling[index] = self._samplings[point.sampling]

    def series(self) -> ScoredSeries:
        expected, lower, upper, score = self.floats
        return ScoredSeries(
            self.item, expected, lower, upper, score, self.is_anomaly, self.direction, self.sampling
        )


def _optional(values: np.ndarray) -> list[float | None]:
    """Floats with NaN as None: [n] -> n entries."""
    return [None if value != value else value for value in values.tolist()]  # NaN != NaN
