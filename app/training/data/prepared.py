"""Composing the jobs: a table (or a file) -> `PreparedData`, regular, gap-filled, finite series."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from app.training.data.errors import DataValidationError
from app.training.data.frequency import common_step, frequency_alias
from app.training.data.gaps import (
    DEFAULT_GAP_POLICY,
    DEFAULT_MAX_GAP_FRACTION,
    GapReport,
    check_gap_options,
    fill_series,
)
from app.training.data.parsing import (
    DEFAULT_TIME_COL,
    DEFAULT_VALUE_COL,
    DateOrder,
    check_columns,
    date_order,
    parse_ids,
    parse_times,
    parse_values,
)
from app.training.data.reading import ReadOptions, read_table
from app.training.data.series import (
    RawSeries,
    SeriesData,
    check_length,
    check_not_constant,
    check_unique_times,
    sort_series,
    split_series,
)


@dataclass(frozen=True)
class PreparedData:
    """What a model trains on: the series of one file, their shared frequency and what was filled in."""

    series: list[SeriesData]
    frequency: str  # pandas offset alias, e.g. "h", "30min", "D", "B"
    gaps: list[GapReport]  # only series that had gaps or dropped edge rows
    fingerprint: str  # sha256 hex over ids, timestamps and values; stable across runs
    source_rows: int
    notices: list[str] = field(default_factory=list)  # what was done to the data that the user should know


def load_training_data(
    path: Path,
    *,
    time_col: str = DEFAULT_TIME_COL,
    value_col: str = DEFAULT_VALUE_COL,
    id_col: str | None = None,
    min_length: int,
    gap_policy: str = DEFAULT_GAP_POLICY,
    max_gap_fraction: float = DEFAULT_MAX_GAP_FRACTION,
    source: str | None = None,
    read_options: ReadOptions | None = None,
) -> PreparedData:
    """`read_table` + `prepare`; messages name the file as given."""
    options = read_options or ReadOptions()
    return prepare(
        read_table(path, options),
        time_col=time_col,
        value_col=value_col,
        id_col=id_col,
        min_length=min_length,
        gap_policy=gap_policy,
        max_gap_fraction=max_gap_fraction,
        source=source if source is not None else str(path),
        dayfirst=options.dayfirst,
    )


def prepare(
    frame: pd.DataFrame,
    *,
    time_col: str = DEFAULT_TIME_COL,
    value_col: str = DEFAULT_VALUE_COL,
    id_col: str | None = None,
    min_length: int,
    gap_policy: str = DEFAULT_GAP_POLICY,
    max_gap_fraction: float = DEFAULT_MAX_GAP_FRACTION,
    source: str = "<data>",
    dayfirst: bool | None = None,
) -> PreparedData:
    """Validate `frame` and turn it into regular, gap-filled series (see the package docstring).

    `dayfirst`: how to read dates like 03/04/2024 when they read both ways (None: detected, else month-first).
    """
    check_gap_options(gap_policy, max_gap_fraction, source)
    check_columns(frame, [time_col, value_col] + ([id_col] if id_col else []), source)
    if frame.empty:
        raise DataValidationError(f"{source}: no data rows (only a header)")
    order = date_order(frame[time_col], time_col, source, dayfirst)
    values = parse_values(frame[value_col], value_col, source)
    ids = (
        parse_ids(frame[id_col], id_col, source)
        if id_col
        else np.full(len(frame), str(value_col), dtype=object)
    )
    grid = _Grid(ids, values, gap_policy, max_gap_fraction, min_length, source)
    times = parse_times(frame[time_col], time_col, source, order is not None and order.dayfirst)
    try:
        series, frequency, gaps, notices = grid.series(times)
    except DataValidationError as error:
        if order is None or not order.ambiguous:
            raise
        raise DataValidationError(
            _date_order_problem(error, order, grid, frame[time_col], time_col)
        ) from error
    if order is not None and order.detected and order.dayfirst:
        notices.insert(0, f'{source}: dates read day-first ("{order.example}" has a day above 12)')
    elif order is not None and order.ambiguous:
        notices.append(f"{source}: {_ambiguity_hint(order, time_col)}")
    return PreparedData(
        series=series,
        frequency=frequency,
        gaps=gaps,
        fingerprint=fingerprint(series),
        source_rows=len(frame),
        notices=notices,
    )


@dataclass(frozen=True)
class _Grid:
    """Everything but the timestamps: so the series can be built again with the other date order."""

    ids: np.ndarray
    values: np.ndarray
    gap_policy: str
    max_gap_fraction: float
    min_length: int
    source: str

    def series(self, times: np.ndarray) -> tuple[list[SeriesData], str, list[GapReport], list[str]]:
        """Rows -> sorted, checked, gap-filled series, their frequency, gap reports and notices."""
        raw, notice = sort_series(split_series(self.ids, times, self.values), self.source)
        for series_id, ts, _vals, rows in raw:
            check_unique_times(series_id, ts, rows, self.source)
        frequency = frequency_alias(common_step(raw, self.source), times)
        series, gaps = _fill_all(
            raw, frequency, self.gap_policy, self.max_gap_fraction, self.min_length, self.source
        )
        return series, frequency, gaps, [notice] if notice else []


def _ambiguity_hint(order: DateOrder, time_col: str) -> str:
    other = "--no-dayfirst" if order.dayfirst else "--dayfirst"
    return (
        f'dates in column "{time_col}" such as "{order.example}" read both ways and were read '
        f"{order.describe()}; if they are {'month' if order.dayfirst else 'day'}-first, pass {other}"
    )


def _date_order_problem(
    error: DataValidationError, order: DateOrder, grid: _Grid, column: pd.Series, time_col: str
) -> str:
    """The message when ambiguous dates gave unusable series: name the date format, not the symptom."""
    try:
        grid.series(parse_times(column, time_col, grid.source, not order.dayfirst))
    except DataValidationError:
        return f"{error}; {_ambiguity_hint(order, time_col)}"
    other = "day-first" if not order.dayfirst else "month-first"
    flag = "--dayfirst" if not order.dayfirst else "--no-dayfirst"
    return (
        f'{grid.source}: timestamps look {other} ("{order.example}"); read {order.describe()} they fail: '
        f"{str(error).removeprefix(grid.source + ': ')}; pass {flag}"
    )


def _fill_all(
    raw: list[RawSeries],
    frequency: str,
    gap_policy: str,
    max_gap_fraction: float,
    min_length: int,
    source: str,
) -> tuple[list[SeriesData], list[GapReport]]:
    """Fill every series and check it; gap reports only for series that had gaps or dropped edge rows."""
    series: list[SeriesData] = []
    gaps: list[GapReport] = []
    for series_id, ts, vals, rows in raw:
        filled, report = fill_series(
            series_id, ts, vals, rows, frequency, gap_policy, max_gap_fraction, source
        )
        check_length(filled, min_length, source)
        check_not_constant(filled, source)
        series.append(filled)
        if report.missing_points or report.trimmed_points:
            gaps.append(report)
    return series, gaps


def fingerprint(series: list[SeriesData]) -> str:
    """sha256 over ids, int64 ns timestamps and float64 values (little-endian, -0.0 folded into 0.0)."""
    digest = hashlib.sha256(b"tswatch-series-v1\0")
    for item in series:
        name = item.id.encode("utf-8")
        digest.update(len(name).to_bytes(8, "little") + name + len(item.values).to_bytes(8, "little"))
        digest.update(np.ascontiguousarray(item.timestamps.astype("datetime64[ns]").view("<i8")).tobytes())
        digest.update(np.ascontiguousarray(np.asarray(item.values, dtype="<f8") + 0.0).tobytes())
    return digest.hexdigest()
