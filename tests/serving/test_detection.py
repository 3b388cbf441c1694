"""Batch detection is the one detector folded over each series through `score_reading`: model-less it equals
`detect_series` bitwise, model-bound it equals a local fold; quirky readings are input; refusals come first."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from app.anomaly import Detector, DetectorConfig, detect_series
from app.errors import InvalidInputError, PayloadTooLargeError
from app.serving.detection import DetectOptions, check_detect_size, check_detection, score_all, score_series
from app.serving.inference import SeriesInput
from app.serving.model_forecasts import ModelForecasts, score_reading

from ..streams.helpers import hourly_series, random_forecaster


def series_input(points: int, seed: int = 0, stamps: bool = True, name: str = "s") -> SeriesInput:
    timestamps, values = hourly_series(points, seed=seed)
    return SeriesInput(name, values, np.array(timestamps, dtype="datetime64[ns]") if stamps else None)


def quirky(points: int = 400, seed: int = 4) -> tuple[list[datetime], list[float | None]]:
    """Hourly readings with a missing value, a duplicate stamp, a late reading, a gap and a spike."""
    stamps, values = hourly_series(points, seed=seed)
    readings: list[float | None] = [float(v) for v in values]
    stamps = list(stamps)
    readings[150] = None  # missing
    stamps[201] = stamps[200]  # duplicate
    stamps[251] = stamps[249] - timedelta(minutes=30)  # late
    stamps[300:] = [stamp + timedelta(hours=5) for stamp in stamps[300:]]  # a gap of 6 hours
    readings[350] = float(values[350]) + 40.0  # a spike
    return stamps, readings


def as_input(stamps: list[datetime] | None, values: list[float | None], name: str = "q") -> SeriesInput:
    array = np.asarray(values, dtype=np.float64)
    return SeriesInput(name, array, None if stamps is None else np.array(stamps, dtype="datetime64[ns]"))


@pytest.mark.parametrize("stamped", [True, False])
def test_model_less_detection_is_detect_series_bitwise(stamped: bool) -> None:
    stamps, values = quirky()
    options = DetectOptions(0.7, DetectorConfig(learning_points=60))
    scored = score_series(as_input(stamps if stamped else None, values), options)
    expected = detect_series(stamps if stamped else None, values, options.config, 0.7)
    assert scored.points() == expected  # every field, floats bit for bit, None where None
    assert scored.anomalies == sum(p.is_anomaly for p in expected)
    assert scored.points(100, 110) == expected[100:110]


def test_quirky_readings_are_answered_unscored_not_refused() -> None:
    stamps, values = quirky()
    points = score_series(as_input(stamps, values), DetectOptions()).points()
    assert len(points) == len(values)
    assert (points[150].sampling, points[150].value, points[150].score) == ("missing", None, None)
    assert (points[201].sampling, points[201].score) == ("duplicate", None)
    assert (points[251].sampling, points[251].score) == ("late", None)
    assert points[300].sampling in ("gap", "reanchored") and points[300].score is not None
    assert all(p.score is None for p in points[:100])  # learning
    assert points[120].score is not None and points[120].sampling == "regular"


def test_model_detection_is_a_local_fold_of_score_reading() -> None:
    forecaster = random_forecaster(window=24)
    stamps, values = quirky()
    options = DetectOptions(0.5, DetectorConfig(learning_points=40))
    scored = score_series(as_input(stamps, values), options, forecaster)
    detector, forecasts = Detector(options.config, 0.5), ModelForecasts(forecaster)
    expected = [score_reading(detector, forecasts, t, v) for t, v in zip(stamps, values, strict=True)]
    assert scored.points() == expected
    assert scored.points()[-1].expected is not None


def test_short_series_are_refused_naming_the_series_and_both_numbers() -> None:
    short = as_input(None, [1.0] * 80 + [None] * 40, name="tiny-one")  # 80 readings: nulls do not count
    with pytest.raises(InvalidInputError) as caught:
        check_detection([series_input(200), short], DetectOptions())
    error = caught.value
    assert error.status == 422
    assert "'tiny-one'" in error.detail and "80" in error.detail and "101" in error.detail
    assert "learning_points" in error.detail
    assert error.fields == {
        "field": "series.1.values",
        "readings": 80,
        "minimum": 101,
        "learning_points": 100,
    }
    check_detection([short], DetectOptions(config=DetectorConfig(learning_points=79)))  # 80 > 79: accepted


def test_a_calendar_model_needs_timestamps() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_detection([series_input(200, stamps=False)], DetectOptions(), random_forecaster(window=24))
    assert caught.value.fields == {"field": "series.0.timestamps"}
    check_detection([series_input(200, stamps=False)], DetectOptions())  # model-less: no calendar needed


def test_mostly_zero_and_constant_series_are_scored() -> None:
    rng = np.random.default_rng(5)
    sparse = np.where(rng.random(600) < 0.05, rng.exponential(3.0, 600), 0.0)
    for values in (sparse, np.zeros(300), np.full(300, 7.5)):
        [scored] = score_all([SeriesInput("z", values, None)], DetectOptions())
        scores = scored.score[~np.isnan(scored.score)]
        assert len(scores) == len(values) - 100 and np.all((scores >= 0) & (scores <= 1))


def test_over_the_cap_is_refused_with_the_limit_and_the_count() -> None:
    series = [series_input(600, name="a"), series_input(500, name="b")]
    check_detect_size(series, 1_100)
    with pytest.raises(PayloadTooLargeError) as caught:
        check_detect_size(series, 1_000)
    assert caught.value.status == 413
    assert caught.value.fields == {"points": 1_100, "limit": 1_000}
    assert "1100" in caught.value.detail and "1000" in caught.value.detail
