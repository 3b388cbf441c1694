import gzip
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.training.data import (
    DataValidationError,
    GapReport,
    PreparedData,
    detect_season,
    load_training_data,
    natural_periods,
    prepare,
    read_table,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
STOCKS = SHARED / "stocks" / "stocks_daily.csv"
TAXI = SHARED / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv"


def hourly(n=48, start="2020-01-01", values=None, freq="h"):
    stamps = pd.date_range(start, periods=n, freq=freq)
    if values is None:
        values = np.sin(np.arange(n) / 3.0) + np.arange(n) * 0.01
    return pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values})


def run(frame, **kwargs):
    kwargs.setdefault("min_length", 2)
    kwargs.setdefault("source", "data.csv")
    return prepare(frame, **kwargs)


def refused(frame, *fragments, **kwargs):
    with pytest.raises(DataValidationError) as info:
        run(frame, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------------------ read_table


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.csv.gz", "d.tsv.gz", "d.parquet", "d.pq"])
def test_read_table_formats(tmp_path, name):
    frame = hourly(5)
    path = tmp_path / name
    if ".parquet" in name or name.endswith(".pq"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False, sep="\t" if ".tsv" in name else ",")
    table = read_table(path)
    assert list(table.columns) == ["timestamp", "value"]
    assert len(table) == 5
    assert np.allclose(table["value"].to_numpy(), frame["value"].to_numpy())


def test_read_table_semicolon_csv_and_bom(tmp_path):
    path = tmp_path / "euro.csv"
    path.write_bytes("\ufefftimestamp;value\n2020-01-01;1\n2020-01-02;2\n".encode())
    assert list(read_table(path).columns) == ["timestamp", "value"]


def test_read_table_unknown_extension(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(DataValidationError, match=r'data\.xlsx: unsupported file type "\.xlsx"'):
        read_table(path)


def test_read_table_missing_file(tmp_path):
    with pytest.raises(DataValidationError, match=r"nope\.csv not found"):
        read_table(tmp_path / "nope.csv")


def test_read_table_unreadable_parquet(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataValidationError, match=r"cannot read .*broken\.parquet as Parquet"):
        read_table(path)


def test_read_table_empty_and_corrupt_gzip(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataValidationError, match=r"empty\.csv is empty"):
        read_table(empty)
    corrupt = tmp_path / "bad.csv.gz"
    corrupt.write_bytes(b"definitely not gzip")
    with pytest.raises(DataValidationError, match=r"cannot read .*bad\.csv\.gz"):
        read_table(corrupt)


def test_load_training_data_names_the_file(tmp_path):
    path = tmp_path / "stocks.csv"
    pd.DataFrame({"date": ["2020-01-01"], "open": [1.0]}).to_csv(path, index=False)
    with pytest.raises(DataValidationError) as info:
        load_training_data(path, time_col="date", value_col="close", min_length=2)
    assert str(info.value) == f'column "close" not found in {path}; available columns: date, open'


def test_load_training_data_gzip_csv(tmp_path):
    path = tmp_path / "series.csv.gz"
    with gzip.open(path, "wt") as handle:
        hourly(30).to_csv(handle, index=False)
    data = load_training_data(path, min_length=10)
    assert data.frequency == "h"
    assert data.source_rows == 30
    assert len(data.series[0]) == 30


# -------------------------------------------------------------------------------------------- columns


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


# ---------------------------------------------------------------------------------------- timestamps


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


def test_unsorted_timestamps_refused_not_sorted():
    frame = pd.DataFrame(
        {
            "ticker": ["aapl"] * 6,
            "date": ["2020-01-01", "2020-01-02", "2020-01-05", "2020-01-03", "2020-01-04", "2020-01-06"],
            "close": [1.0, 2, 3, 4, 5, 6],
        }
    )
    refused(
        frame,
        'series "aapl": timestamps are not sorted: row 4 (2020-01-03) comes after 2020-01-05',
        "sort",
        time_col="date",
        value_col="close",
        id_col="ticker",
    )


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


def test_off_grid_timestamp_refused():
    frame = hourly(10)
    frame.loc[5, "timestamp"] = "2020-01-01 05:07:00"
    refused(frame, "2020-01-01 05:07 (row 6) is off the regular", "resample")


# --------------------------------------------------------------------------------------------- values


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


# ----------------------------------------------------------------------------------------- frequency


@pytest.mark.parametrize(
    ("freq", "expected"),
    [
        ("h", "h"),
        ("30min", "30min"),
        ("15min", "15min"),
        ("min", "min"),
        ("10s", "10s"),
        ("D", "D"),
        ("2D", "2D"),
        ("W-SUN", "W"),
        ("W-MON", "W-MON"),
        ("MS", "MS"),
        ("ME", "ME"),
        ("QS", "QS"),
        ("QE", "QE"),
        ("YS", "YS"),
    ],
)
def test_frequency_inferred(freq, expected):
    frame = hourly(40, freq=freq)
    data = run(frame)
    assert data.frequency == expected
    assert len(data.series[0]) == 40
    assert not data.gaps


def test_frequency_from_median_despite_gaps():
    frame = hourly(100).drop(index=[10, 11, 12, 50, 70]).reset_index(drop=True)
    assert run(frame).frequency == "h"


def test_business_days_with_holiday():
    days = pd.bdate_range("2020-01-06", periods=30)
    days = days[days != pd.Timestamp("2020-01-20")]  # Martin Luther King Day
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "close": np.linspace(100, 130, len(days))})
    data = run(frame, time_col="date", value_col="close")
    assert data.frequency == "B"
    series = data.series[0]
    assert len(series) == 30
    assert not (pd.DatetimeIndex(series.timestamps).day_of_week >= 5).any()
    assert data.gaps == [
        GapReport("close", missing_points=1, largest_gap=1, first_gap=pd.Timestamp("2020-01-20"), length=30)
    ]
    i = int(np.flatnonzero(series.timestamps == np.datetime64("2020-01-20"))[0])
    friday, tuesday = series.values[i - 1], series.values[i + 1]
    assert friday < series.values[i] < tuesday
    # linear in time: Monday is 3 of the 4 days from Friday to Tuesday
    assert series.values[i] == pytest.approx(friday + 0.75 * (tuesday - friday))


def test_daily_with_weekends_is_D():
    assert run(hourly(30, freq="D")).frequency == "D"


def test_long_format_frequencies_must_match():
    a = hourly(20).assign(id="a")
    b = hourly(20, freq="D").assign(id="b")
    refused(pd.concat([a, b]), 'series "a" has frequency "h" but series "b" has "D"', id_col="id")


# ---------------------------------------------------------------------------------------- gap policy


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


# ------------------------------------------------------------------------------------ length, constant


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


# ------------------------------------------------------------------------------------------ long format


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


def test_long_format_missing_id_refused():
    frame = hourly(10).assign(id="a")
    frame.loc[3, "id"] = None
    refused(frame, 'column "id" has 1 empty series ids, first at row 4', id_col="id")


def test_without_id_series_named_after_value_column():
    frame = hourly(10).rename(columns={"value": "load"})
    assert run(frame, value_col="load").series[0].id == "load"


# ------------------------------------------------------------------------------------------ fingerprint


def tiny_frame():
    return pd.DataFrame(
        {
            "id": ["a", "a", "a", "b", "b", "b"],
            "timestamp": ["2020-01-01", "2020-01-02", "2020-01-03"] * 2,
            "value": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0],
        }
    )


def test_fingerprint_stable():
    first = run(tiny_frame(), id_col="id")
    second = run(tiny_frame().iloc[[3, 0, 4, 1, 5, 2]], id_col="id")  # row order across series irrelevant
    assert first.fingerprint == second.fingerprint
    assert len(first.fingerprint) == 64
    # pinned: the same data must give the same fingerprint in any process, on any machine
    assert first.fingerprint == "be2f6e9eb8c099676a911a1674135956cc108f5d00caac1889d28f52aafe903b"


def test_fingerprint_sensitive():
    base = run(tiny_frame(), id_col="id").fingerprint
    value = tiny_frame()
    value.loc[5, "value"] = 7.000001
    shifted = tiny_frame()
    shifted["timestamp"] = ["2020-01-02", "2020-01-03", "2020-01-04"] * 2
    renamed = tiny_frame()
    renamed["id"] = ["a", "a", "a", "c", "c", "c"]
    others = {run(f, id_col="id").fingerprint for f in (value, shifted, renamed)}
    assert base not in others
    assert len(others) == 3


# --------------------------------------------------------------------------------------------- seasons


def test_season_hourly_sine():
    rng = np.random.default_rng(1)
    t = np.arange(24 * 60)
    values = np.sin(2 * np.pi * t / 24) + 0.4 * rng.normal(size=len(t)) + 0.002 * t
    assert detect_season(values, "h") == 24


def test_season_daily_weekly_pattern():
    rng = np.random.default_rng(2)
    days = pd.date_range("2020-01-01", periods=730, freq="D")
    values = np.where(days.day_of_week >= 5, 40.0, 100.0) + rng.normal(scale=8, size=len(days))
    assert detect_season(values, "D") == 7


def test_season_white_noise_and_random_walk():
    rng = np.random.default_rng(3)
    assert detect_season(rng.normal(size=5000), "h") == 1
    assert detect_season(rng.normal(size=3000).cumsum(), "B") == 1


def test_season_30min():
    rng = np.random.default_rng(4)
    t = np.arange(48 * 40)
    values = 10 + 5 * np.sin(2 * np.pi * t / 48) + 2 * np.sin(4 * np.pi * t / 48) + rng.normal(size=len(t))
    assert detect_season(values, "30min") == 48


def test_season_fallback_to_acf_peak_and_max_lag():
    rng = np.random.default_rng(5)
    t = np.arange(2000)
    values = np.sin(2 * np.pi * t / 10) + 0.3 * rng.normal(size=len(t))
    assert detect_season(values, "h") == 10  # 10 is not natural for hourly data, but clearly periodic
    assert detect_season(values, "h", max_lag=8) == 1


def test_season_degenerate_inputs():
    assert detect_season(np.ones(500), "h") == 1
    assert detect_season(np.array([1.0, 2.0, 3.0]), "h") == 1
    assert detect_season(np.array([]), "D") == 1


def test_season_fast_on_20k_points():
    rng = np.random.default_rng(6)
    values = rng.normal(size=20_000).cumsum()
    started = time.perf_counter()
    detect_season(values, "min")
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("freq", "periods"),
    [
        ("h", [24, 168]),
        ("30min", [48, 336]),
        ("15min", [96, 672]),
        ("min", [60, 1440, 10080]),
        ("D", [7, 365]),
        ("B", [5, 260]),
        ("W-MON", [52]),
        ("MS", [12]),
        ("ME", [12]),
        ("QS", [4]),
        ("YS", []),
    ],
)
def test_natural_periods(freq, periods):
    assert natural_periods(freq) == periods


# ------------------------------------------------------------------------------------------ performance


def test_long_format_200k_rows_is_fast():
    rng = np.random.default_rng(7)
    per_series, count = 10_000, 20
    stamps = pd.date_range("2020-01-01", periods=per_series, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame(
        {
            "id": np.repeat([f"s{i:02d}" for i in range(count)], per_series),
            "timestamp": np.tile(stamps, count),
            "value": rng.normal(size=per_series * count),
        }
    )
    frame.loc[rng.choice(len(frame), 2000, replace=False), "value"] = np.nan
    started = time.perf_counter()
    data = prepare(frame, id_col="id", min_length=100)
    assert time.perf_counter() - started < 2.0
    assert len(data.series) == count
    assert all(np.isfinite(s.values).all() for s in data.series)


# ----------------------------------------------------------------------------------------- real files


def test_real_stocks_aapl_business_days():
    if not STOCKS.exists():
        pytest.skip(f"real data not present: {STOCKS}")
    frame = read_table(STOCKS)
    aapl = frame[frame["ticker"] == "AAPL"][["date", "close"]]
    data = prepare(aapl, time_col="date", value_col="close", min_length=100, source=str(STOCKS))
    assert data.frequency == "B"
    (series,) = data.series
    assert series.id == "close"
    assert data.gaps and data.gaps[0].largest_gap <= 5  # holidays only
    assert detect_season(series.values, data.frequency) in (1, 5)


def test_real_nyc_taxi_half_hourly():
    if not TAXI.exists():
        pytest.skip(f"real data not present: {TAXI}")
    data = load_training_data(TAXI, min_length=100)
    assert data.frequency == "30min"
    assert data.source_rows == len(data.series[0]) == 10_320
    assert detect_season(data.series[0].values, data.frequency) in (48, 336)
    assert data.fingerprint == load_training_data(TAXI, min_length=100).fingerprint
