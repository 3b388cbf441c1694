"""`app.training.data.gaps`: gap policies, gap reports and the grid (through `prepare`)."""

import numpy as np
import pandas as pd
import pytest

from .data_helpers import hourly, refused, run


def gappy_frame():
    frame = hourly(50, values=np.arange(50, dtype=float) * 2.0)
    frame = frame.drop(index=[10, 11, 12, 30]).reset_index(drop=True)  # 4 missing timestamps
    frame.loc[20, "value"] = np.nan  # and one empty value
    return frame


def test_interpolate_fills_and_reports():
    data = run(gappy_frame())
    series = data.series[0]
    assert len(series) == 50
    assert np.allclose(series.values, np.arange(50) * 2.0)
    assert (np.diff(series.timestamps) == np.timedelta64(1, "h")).all()
    (report,) = data.gaps
    assert report.series_id == "value"
    assert report.missing_points == 5
    assert report.largest_gap == 3
    assert report.first_gap == pd.Timestamp("2020-01-01 10:00")
    assert report.length == 50
    assert report.fraction == pytest.approx(0.1)
    assert "filled 5 missing points" in report.summary()


def test_ffill_carries_last_value():
    series = run(gappy_frame(), gap_policy="ffill").series[0]
    assert series.values[10] == series.values[11] == series.values[12] == series.values[9] == 18.0
    assert series.values[30] == 58.0
    assert np.isfinite(series.values).all()


def test_error_policy_refuses_gaps():
    refused(gappy_frame(), 'series "value" has 5 missing points', 'gap policy is "error"', gap_policy="error")
    assert run(hourly(20), gap_policy="error").gaps == []


def test_too_many_gaps_refused():
    frame = hourly(100).iloc[::2].reset_index(drop=True)  # spacing 2h: fine, nothing missing
    assert run(frame).frequency == "2h"
    frame = hourly(100).drop(index=range(20, 60)).reset_index(drop=True)
    refused(frame, 'series "value" is 40.0% gaps', "more than the 20% allowed")
    assert run(frame, max_gap_fraction=0.5).gaps[0].missing_points == 40


def test_leading_and_trailing_empty_values_dropped():
    frame = hourly(20)
    frame.loc[[0, 1, 19], "value"] = np.nan
    data = run(frame)
    assert len(data.series[0]) == 17
    assert pd.Timestamp(data.series[0].timestamps[0]) == pd.Timestamp("2020-01-01 02:00")
    assert data.gaps[0].trimmed_points == 3
    assert data.gaps[0].missing_points == 0


def test_all_empty_series_refused():
    refused(hourly(10, values=[np.nan] * 10), 'series "value" has no values')


def test_unknown_gap_policy():
    refused(hourly(10), 'unknown gap policy "zero"', gap_policy="zero")


def test_off_grid_timestamp_refused():
    frame = hourly(10)
    frame.loc[5, "timestamp"] = "2020-01-01 05:07:00"
    refused(frame, "2020-01-01 05:07 (row 6) is off the regular", "resample")
