"""`app.training.data.frequency`: the inferred spacing and its pandas alias (through `prepare`)."""

import numpy as np
import pandas as pd
import pytest

from app.training.data.gaps import GapReport

from .data_helpers import hourly, refused, run


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
