"""`app.training.data.parsing`: column checks and parsing of timestamps, values and ids (through `prepare`)."""

import numpy as np
import pandas as pd
import pytest

from app.training.data.errors import DataValidationError
from app.training.data.prepared import load_training_data

from .data_helpers import hourly, refused, run


def test_missing_columns_listed():
    frame = pd.DataFrame({"date": ["2020-01-01"], "open": [1.0], "Close": [2.0]})
    message = refused(frame, time_col="date", value_col="close", source="stocks.csv")
    assert message == (
        'column "close" not found in stocks.csv; available columns: date, open, Close; did you mean "Close"?'
    )
    refused(frame, 'column "timestamp" not found in data.csv')
    refused(frame, 'column "ticker" not found', time_col="date", value_col="open", id_col="ticker")


def test_empty_frame():
    refused(pd.DataFrame({"timestamp": [], "value": []}), "no data rows")


def test_same_column_twice():
    refused(hourly(5), "must differ", value_col="timestamp")


def test_unparseable_timestamp_names_row_and_value():
    frame = hourly(30)
    frame.loc[16, "timestamp"] = "yesterday"
    refused(frame, 'column "timestamp" has 1 values that are not dates/times, first at row 17: "yesterday"')


def test_empty_timestamp():
    frame = hourly(10)
    frame.loc[4, "timestamp"] = None
    refused(frame, "1 empty timestamps, first at row 5")


def test_numeric_timestamps_refused():
    frame = pd.DataFrame({"timestamp": np.arange(10) * 3600, "value": np.arange(10.0)})
    refused(frame, 'column "timestamp" holds numbers')


def test_mixed_formats_are_parsed():
    frame = pd.DataFrame(
        {
            "timestamp": ["2020-01-01 00:00", "2020-01-02", "2020-01-03 00:00:00", "Jan 4 2020"],
            "value": [1, 2, 3, 5],
        }
    )
    data = run(frame)
    assert data.frequency == "D"
    assert list(data.series[0].timestamps) == list(pd.date_range("2020-01-01", periods=4).values)


def test_mixed_offsets_converted_to_utc():
    frame = pd.DataFrame(
        {
            "timestamp": ["2020-03-29 00:00+01:00", "2020-03-29 01:00+01:00", "2020-03-29 03:00+02:00"],
            "value": [1.0, 2.0, 4.0],
        }
    )
    data = run(frame)
    expected = pd.date_range("2020-03-28 23:00", periods=3, freq="h").values
    assert data.series[0].timestamps.dtype == np.dtype("datetime64[ns]")
    assert (data.series[0].timestamps == expected).all()
    assert data.frequency == "h"


def test_tz_aware_datetime_column_converted():
    stamps = pd.date_range("2020-01-01", periods=5, freq="h", tz="America/New_York")
    data = run(pd.DataFrame({"timestamp": stamps, "value": np.arange(5.0)}))
    assert pd.Timestamp(data.series[0].timestamps[0]) == pd.Timestamp("2020-01-01 05:00")


def test_naive_and_aware_mixed_refused():
    frame = pd.DataFrame(
        {
            "timestamp": ["2020-01-01 00:00+01:00", "2020-01-01 01:00", "2020-01-01 02:00+01:00"],
            "value": [1, 2, 3],
        }
    )
    refused(frame, "mixes timestamps with and without a time zone", 'row 2: "2020-01-01 01:00"')


def test_non_numeric_values_counted_and_located():
    frame = hourly(30)
    frame["value"] = frame["value"].astype(object)
    frame.loc[16, "value"] = "abc"
    frame.loc[20, "value"] = "n.a."
    frame.loc[25, "value"] = "x"
    refused(frame, 'column "value" has 3 non-numeric values, first at row 17: "abc"')


def test_non_numeric_values_from_csv(tmp_path):
    path = tmp_path / "prices.csv"
    rows = [f"2020-01-01 {h:02d}:00,{h}" for h in range(20)]
    rows[7] = "2020-01-01 07:00,1,5"
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataValidationError):
        load_training_data(path, min_length=2)  # the extra field breaks the row one way or another
    rows[7] = '2020-01-01 07:00,"1,5"'
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataValidationError, match=r'first at row 8: "1,5" \(thousands separators'):
        load_training_data(path, min_length=2)


def test_empty_cells_are_gaps_not_errors(tmp_path):
    path = tmp_path / "gappy.csv"
    rows = [f"2020-01-01 {h:02d}:00,{h * 2}" for h in range(24)]
    rows[5] = "2020-01-01 05:00,"
    rows[6] = "2020-01-01 06:00,NA"
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    data = load_training_data(path, min_length=2)
    assert np.allclose(data.series[0].values, np.arange(24) * 2.0)
    assert data.gaps[0].missing_points == 2
    assert data.gaps[0].largest_gap == 2


def test_blank_strings_in_object_column_are_gaps():
    frame = hourly(10, values=[1.0, 2.0, " ", "4", None, "6", 7, 8, "nan", 10])
    data = run(frame, max_gap_fraction=0.5)
    assert np.allclose(data.series[0].values, np.arange(1.0, 11.0))


def test_infinite_values_refused():
    frame = hourly(10)
    frame.loc[3, "value"] = np.inf
    refused(frame, 'column "value" has 1 infinite values, first at row 4')


def test_long_format_missing_id_refused():
    frame = hourly(10).assign(id="a")
    frame.loc[3, "id"] = None
    refused(frame, 'column "id" has 1 empty series ids, first at row 4', id_col="id")


def test_without_id_series_named_after_value_column():
    frame = hourly(10).rename(columns={"value": "load"})
    assert run(frame, value_col="load").series[0].id == "load"
