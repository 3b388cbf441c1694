"""Detection in bounded chunks gives exactly the unchunked result; the per-request cap refuses before work.

(The chunked encoding of the answer is tested with the wire layer, tests/api/test_detect_wire.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from app.anomaly import CalibrationSet, ResidualDetector
from app.errors import PayloadTooLargeError
from app.serving.detection import check_detect_size
from app.serving.inference import SeriesInput, lead_one_quantiles, score_series

from ..streams.helpers import hourly_series, normal_calibrator, random_forecaster


def series_input(points: int, seed: int = 0, stamps: bool = True, name: str = "s") -> SeriesInput:
    timestamps, values = hourly_series(points, seed=seed)
    return SeriesInput(name, values, np.array(timestamps, dtype="datetime64[ns]") if stamps else None)


def unchunked_quantiles(forecaster, item: SeriesInput) -> np.ndarray:
    """Today's computation: every window (and its calendar inputs) of the whole series at once."""
    window = forecaster.spec.window
    rolling = forecaster.predict_rolling(
        item.values[:-1], None if item.timestamps is None else item.timestamps[:-1]
    )
    quantiles = np.full((len(item.values), len(forecaster.spec.quantiles)), np.nan)
    quantiles[window:] = rolling[:, 0, :]
    return quantiles


@pytest.mark.parametrize("calendar", [True, False])
@pytest.mark.parametrize("chunk", [1024, 2048, 8192])
def test_chunked_forecasts_equal_the_unchunked_ones(calendar: bool, chunk: int) -> None:
    forecaster = random_forecaster(window=24, calendar=calendar, patch_len=4)
    item = series_input(5_000, stamps=calendar)
    chunked = lead_one_quantiles(forecaster, item, chunk_windows=chunk)
    np.testing.assert_array_equal(chunked, unchunked_quantiles(forecaster, item))


def test_chunked_scores_equal_the_unchunked_ones() -> None:
    forecaster, calibration = random_forecaster(window=24), CalibrationSet(normal_calibrator())
    item = series_input(3_000, seed=3)
    scored = score_series(forecaster, calibration, item, 0.9, chunk_windows=1024)
    expected = ResidualDetector(calibration, 0.9).detect(
        item.values, unchunked_quantiles(forecaster, item), forecaster.spec.quantiles, item.id
    )
    for field in ("expected", "lower", "upper", "score", "is_anomaly"):
        np.testing.assert_array_equal(getattr(scored.result, field), getattr(expected, field))
    assert list(scored.result.direction) == list(expected.direction)
    assert scored.anomalies == int(expected.is_anomaly.sum())


def test_over_the_cap_is_refused_with_the_limit_and_the_count() -> None:
    series = [series_input(600, name="a"), series_input(500, name="b")]
    check_detect_size(series, 1_100)
    with pytest.raises(PayloadTooLargeError) as caught:
        check_detect_size(series, 1_000)
    assert caught.value.status == 413
    assert caught.value.fields == {"points": 1_100, "limit": 1_000}
    assert "1100" in caught.value.detail and "1000" in caught.value.detail
