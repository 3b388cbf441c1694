"""`app.training.data.prepared`: the composed pipeline, its fingerprint, and real files end to end."""

import gzip

import numpy as np
import pandas as pd
import pytest

from app.training.data.errors import DataValidationError
from app.training.data.prepared import load_training_data, prepare
from app.training.data.reading import read_table
from app.training.data.seasons import detect_season

from .data_helpers import STOCKS, TAXI, hourly, run


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


def test_long_format_many_series_with_gaps():
    """Speed on 200,000 rows is measured by bench/data.py."""
    rng = np.random.default_rng(7)
    per_series, count = 500, 20
    stamps = pd.date_range("2020-01-01", periods=per_series, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame(
        {
            "id": np.repeat([f"s{i:02d}" for i in range(count)], per_series),
            "timestamp": np.tile(stamps, count),
            "value": rng.normal(size=per_series * count),
        }
    )
    frame.loc[rng.choice(len(frame), 100, replace=False), "value"] = np.nan
    data = prepare(frame, id_col="id", min_length=100)
    assert len(data.series) == count
    assert all(np.isfinite(s.values).all() for s in data.series)


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
