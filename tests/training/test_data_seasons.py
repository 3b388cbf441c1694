"""`app.training.data.seasons`: seasonal period detection."""

import numpy as np
import pandas as pd
import pytest

from app.training.data.seasons import detect_season, natural_periods


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
