"""Series: rows grouped by id, put in time order, and the checks on a series after gap filling."""

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


def sort_series(raw: list[RawSeries], source: str) -> tuple[list[RawSeries], str | None]:
    """Each series in time order (stable: rows with the same timestamp keep their file order), and a notice
    naming the first row that was out of order when any was: an unsorted file is sorted, not refused."""
    moved, unsorted, first = 0, 0, None
    ordered: list[RawSeries] = []
    for series_id, ts, vals, rows in raw:
        steps = np.diff(ts)
        back = np.flatnonzero(steps < 0)
        if len(back):
            i = int(back[np.argmin(rows[back + 1])])
            example = (int(rows[i + 1]), ts[i + 1], ts[i], int(rows[i]))
            first = example if first is None or example[0] < first[0] else first
            moved, unsorted = moved + len(back), unsorted + 1
            order = np.argsort(ts, kind="stable")
            ts, vals, rows = ts[order], vals[order], rows[order]
        ordered.append((series_id, ts, vals, rows))
    if first is None:
        return ordered, None
    row, later, earlier, earlier_row = first
    notice = (
        f"{source}: timestamps were not in time order in {unsorted} series "
        f"({plural(moved, 'row')} followed by an earlier time; first: row {row + 1} ({to_message_text(later)}) "
        f"after {to_message_text(earlier)} (row {earlier_row + 1})); sorted them by time"
    )
    return ordered, notice


def check_unique_times(series_id: str, ts: np.ndarray, rows: np.ndarray, source: str) -> None:
    """One row per timestamp in a series (checked after `sort_series`): duplicates are refused."""
    same = np.flatnonzero(np.diff(ts) == 0)
    if not len(same):
        return
    i = int(same[np.argmin(rows[same + 1])])  # the earliest duplicate row in the file
    first, second = sorted((int(rows[i]), int(rows[i + 1])))
    raise DataValidationError(
        f'{source}: duplicate timestamp {to_message_text(ts[i])} in series "{series_id}" (rows {first + 1} and '
        f"{second + 1}); keep one row per timestamp (aggregate or remove duplicates)"
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
