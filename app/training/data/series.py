"""Series: rows grouped by id, checked for time order, and the checks on a series after gap filling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.timestamps import to_message_text
from app.training.data.errors import DataValidationError, plural

RawSeries = tuple[str, np.ndarray, np.ndarray, np.ndarray]  # id, int64 ns timestamps, values, row positions


@dataclass(frozen=True)
class SeriesData:
    id: str
    timestamps: np.ndarray  # datetime64[ns], strictly increasing, regular at the prepared frequency
    values: np.ndarray  # float64, finite

    def __len__(self) -> int:
        return len(self.values)


def split_series(ids: np.ndarray, times: np.ndarray, values: np.ndarray) -> list[RawSeries]:
    """Group rows by id (sorted ids, original row order kept within a series)."""
    codes, uniques = pd.factorize(ids, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    ts = times.view("i8")[order]
    vals = values[order]
    return [
        (str(uniques[i]), t, v, r)
        for i, (t, v, r) in enumerate(
            zip(np.split(ts, bounds), np.split(vals, bounds), np.split(order, bounds), strict=True)
        )
    ]


def check_order(series_id: str, ts: np.ndarray, rows: np.ndarray, source: str) -> None:
    """Timestamps must be strictly increasing in file order: unsorted data is refused, not silently sorted."""
    steps = np.diff(ts)
    bad = np.flatnonzero(steps <= 0)
    if not len(bad):
        return
    i = int(bad[np.argmin(rows[bad + 1])])  # the earliest offending row in the file
    earlier, later = to_message_text(ts[i]), to_message_text(ts[i + 1])
    if steps[i] == 0:
        raise DataValidationError(
            f'{source}: duplicate timestamp {later} in series "{series_id}" (rows {rows[i] + 1} and '
            f"{rows[i + 1] + 1}); keep one row per timestamp (aggregate or remove duplicates)"
        )
    raise DataValidationError(
        f'{source}: series "{series_id}": timestamps are not sorted: row {rows[i + 1] + 1} ({later}) comes '
        f"after {earlier} (row {rows[i] + 1}); {plural(int((steps < 0).sum()), 'row')} out of order — sort "
        f"the file by time"
    )


def check_length(series: SeriesData, min_length: int, source: str) -> None:
    if len(series.values) < min_length:
        raise DataValidationError(
            f'{source}: series "{series.id}" has {len(series.values)} points after gap filling but window + '
            f"horizon needs {min_length}; lower --window/--horizon or supply more data"
        )


def check_not_constant(series: SeriesData, source: str) -> None:
    if len(series.values) and np.ptp(series.values) == 0:
        raise DataValidationError(
            f'{source}: series "{series.id}" is constant (every value is {series.values[0]}): nothing to learn'
        )
