"""`app.training.data.series`: grouping rows by id, time order, and the checks on a filled series."""

import numpy as np
import pandas as pd

from app.training.data.prepared import PreparedData

from .data_helpers import hourly, refused, run


def test_unsorted_timestamps_are_sorted_with_a_notice():
    frame = pd.DataFrame(
        {
            "ticker": ["aapl"] * 6,
            "date": ["2020-01-01", "2020-01-02", "2020-01-05", "2020-01-03", "2020-01-04", "2020-01-06"],
            "close": [1.0, 2, 5, 3, 4, 6],
        }
    )
    data = run(frame, time_col="date", value_col="close", id_col="ticker")
    assert data.series[0].values.tolist() == [1.0, 2, 3, 4, 5, 6]
    assert data.frequency == "D"
    (notice,) = data.notices
    assert "not in time order in 1 series" in notice
    assert "row 4 (2020-01-03) after 2020-01-05 (row 3)" in notice and "sorted them by time" in notice


def test_duplicate_timestamp_refused_even_when_unsorted():
    frame = pd.DataFrame(
        {"date": ["2020-01-05", "2020-01-04", "2020-01-06", "2020-01-05"], "close": [1, 2, 3, 4]}
    )
    refused(frame, 'duplicate timestamp 2020-01-05 in series "close" (rows 1 and 4)', time_col="date",
            value_col="close")  # fmt: skip


def test_duplicate_timestamp_refused():
    frame = pd.DataFrame(
        {
            "ticker": ["aapl"] * 4,
            "date": ["2020-01-04", "2020-01-05", "2020-01-05", "2020-01-06"],
            "close": [1, 2, 3, 4],
        }
    )
    refused(
        frame,
        'duplicate timestamp 2020-01-05 in series "aapl" (rows 2 and 3)',
        time_col="date",
        value_col="close",
        id_col="ticker",
    )


def test_too_short_after_gap_filling():
    frame = hourly(50).assign(id="b")
    refused(
        frame,
        'series "b" has 50 points after gap filling but window + horizon needs 120; lower --window/--horizon',
        id_col="id",
        min_length=120,
    )


def test_constant_series_refused():
    frame = hourly(20, values=[3.0] * 20).assign(id="c")
    refused(frame, 'series "c" is constant (every value is 3.0): nothing to learn', id_col="id")


def test_long_format_two_ids_sorted_and_interleaved():
    a = hourly(30, values=np.arange(30.0)).assign(ticker=2)
    b = hourly(20, start="2020-01-01 05:00", values=np.arange(20.0) ** 2).assign(ticker=10)
    frame = pd.concat([a, b]).sort_values("timestamp", kind="stable").reset_index(drop=True)
    assert frame["ticker"].iloc[5:9].tolist() == [2, 10, 2, 10]  # rows of the two series alternate
    data = run(frame, id_col="ticker")
    assert [s.id for s in data.series] == ["10", "2"]  # ids are strings, sorted as strings
    assert np.allclose(data.series[1].values, np.arange(30.0))
    assert np.allclose(data.series[0].values, np.arange(20.0) ** 2)
    assert data.source_rows == 50
    assert isinstance(data, PreparedData)
