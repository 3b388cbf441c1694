"""Gap filling: put a series on its regular grid and fill (or refuse) the points it is missing.

Gaps are missing timestamps on the grid plus empty/NaN values; leading and trailing empty values are dropped
first, and every timestamp must lie on the grid. `gap_policy` decides what happens to the rest:

* ``"interpolate"`` (default): insert the missing timestamps and fill values linearly in time between the
  neighbouring observations.
* ``"ffill"``: insert the missing timestamps and carry the last observed value forward.
* ``"error"``: refuse any gap.

Whatever the policy, a series whose filled points exceed `max_gap_fraction` of its length is refused: the
data needs fixing rather than inventing. Each series' filled gaps are described by a `GapReport`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.timestamps import PdTimestampText, ns_to_pd_timestamp, to_message_text
from app.training.data.errors import DataValidationError, plural
from app.training.data.series import SeriesData

GAP_POLICIES = ("interpolate", "ffill", "error")
DEFAULT_GAP_POLICY = "interpolate"
DEFAULT_MAX_GAP_FRACTION = 0.2


def check_gap_options(gap_policy: str, max_gap_fraction: float, source: str) -> None:
    """Refuse an unknown policy or a fraction outside [0, 1] before any data is parsed."""
    if gap_policy not in GAP_POLICIES:
        options = ", ".join(f'"{p}"' for p in GAP_POLICIES)
        raise DataValidationError(f'{source}: unknown gap policy "{gap_policy}"; choose one of {options}')
    if not 0.0 <= max_gap_fraction <= 1.0:
        raise DataValidationError(
            f"{source}: max_gap_fraction must be between 0 and 1, got {max_gap_fraction}"
        )


@dataclass(frozen=True)
class GapReport:
    """Points a series was missing and that the gap policy filled in.

    `missing_points` counts every filled point: timestamps absent from the data plus rows with an empty value.
    The manifest stores it as it is (`DataDescription.gaps`), `first_gap` written as `str(pd.Timestamp)`.
    """

    series_id: str
    missing_points: int
    largest_gap: int  # longest run of consecutive filled points
    first_gap: PdTimestampText | None  # first filled timestamp
    length: int  # points in the series after filling
    trimmed_points: int = 0  # leading/trailing rows with empty values that were dropped

    @property
    def fraction(self) -> float:
        return self.missing_points / self.length if self.length else 0.0

    def summary(self) -> str:
        text = f'series "{self.series_id}": '
        if self.missing_points:
            text += (
                f"filled {self.missing_points} missing points ({self.fraction:.1%}), largest gap "
                f"{self.largest_gap} points, first at {to_message_text(self.first_gap)}"
            )
        else:
            text += "no gaps"
        if self.trimmed_points:
            text += f"; dropped {self.trimmed_points} leading/trailing rows without values"
        return text


def fill_series(
    series_id: str,
    ts: np.ndarray,
    vals: np.ndarray,
    rows: np.ndarray,
    frequency: str,
    gap_policy: str,
    max_gap_fraction: float,
    source: str,
) -> tuple[SeriesData, GapReport]:
    """One series on its regular grid, edge rows without values dropped and gaps filled per the policy."""
    present = np.flatnonzero(~np.isnan(vals))
    if not len(present):
        raise DataValidationError(
            f'{source}: series "{series_id}" has no values (all {len(vals)} rows are empty); fill or remove it'
        )
    first, last = int(present[0]), int(present[-1])
    trimmed = first + len(vals) - 1 - last
    ts, vals, rows = ts[first : last + 1], vals[first : last + 1], rows[first : last + 1]
    grid = (
        pd.date_range(ns_to_pd_timestamp(ts[0]), ns_to_pd_timestamp(ts[-1]), freq=frequency)
        .as_unit("ns")
        .asi8
    )
    full = np.full(len(grid), np.nan)
    full[_grid_positions(series_id, ts, rows, grid, frequency, source)] = vals
    missing = np.isnan(full)
    report = _gap_report(series_id, missing, grid, trimmed)
    _check_gaps(report, gap_policy, max_gap_fraction, frequency, source)
    if report.missing_points:
        full = _interpolate(full, missing, grid) if gap_policy == "interpolate" else _ffill(full, missing)
    return SeriesData(id=series_id, timestamps=grid.view("datetime64[ns]"), values=full), report


def _grid_positions(
    series_id: str, ts: np.ndarray, rows: np.ndarray, grid: np.ndarray, frequency: str, source: str
) -> np.ndarray:
    positions = np.searchsorted(grid, ts)
    inside = positions < len(grid)
    on_grid = inside & (grid[np.minimum(positions, len(grid) - 1)] == ts)
    if not on_grid.all():
        i = int(np.flatnonzero(~on_grid)[0])
        raise DataValidationError(
            f'{source}: series "{series_id}": timestamp {to_message_text(ts[i])} (row {rows[i] + 1}) is off the '
            f'regular "{frequency}" grid starting at {to_message_text(grid[0] if len(grid) else ts[0])}; '
            f"resample the data to a fixed interval first"
        )
    return positions


def _gap_report(series_id: str, missing: np.ndarray, grid: np.ndarray, trimmed: int) -> GapReport:
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return GapReport(
        series_id=series_id,
        missing_points=int(missing.sum()),
        largest_gap=int((ends - starts).max()) if len(starts) else 0,
        first_gap=ns_to_pd_timestamp(grid[starts[0]]) if len(starts) else None,
        length=len(grid),
        trimmed_points=trimmed,
    )


def _check_gaps(
    report: GapReport, gap_policy: str, max_gap_fraction: float, frequency: str, source: str
) -> None:
    if not report.missing_points:
        return
    where = (
        f"{plural(report.missing_points, 'missing point')} (at {frequency!r} spacing; largest gap "
        f"{plural(report.largest_gap, 'point')}, first at {to_message_text(report.first_gap)})"
    )
    if gap_policy == "error":
        raise DataValidationError(
            f'{source}: series "{report.series_id}" has {where} and the gap policy is "error"; fill the gaps '
            f'in the data or use gap policy "interpolate" or "ffill"'
        )
    if report.fraction > max_gap_fraction:
        raise DataValidationError(
            f'{source}: series "{report.series_id}" is {report.fraction:.1%} gaps: {where} in '
            f"{report.length} points, more than the {max_gap_fraction:.0%} allowed; fix the data (or check "
            f"the frequency {frequency!r} is the one you expect)"
        )


def _interpolate(full: np.ndarray, missing: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear in time (not in position: a business-day holiday after a weekend weighs the weekend)."""
    filled = full.copy()
    x = grid.astype(np.float64)
    filled[missing] = np.interp(x[missing], x[~missing], full[~missing])
    return filled


def _ffill(full: np.ndarray, missing: np.ndarray) -> np.ndarray:
    last_seen = np.maximum.accumulate(np.where(missing, 0, np.arange(len(full))))
    return full[last_seen]
