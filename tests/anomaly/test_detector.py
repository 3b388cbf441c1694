"""SpreadResidualScorer, sensitivity mapping and ResidualDetector on synthetic anomalies."""

import json

import numpy as np
import pytest

from app.anomaly import (
    CalibrationSet,
    ConformalCalibrator,
    ResidualDetector,
    SpreadResidualScorer,
    calibrate_from_residuals,
    sensitivity_to_alpha,
)

LEVELS = [0.1, 0.5, 0.9]
Z90 = 1.2815515655446004


def forecast(n: int, sigma: float = 1.0, level: float = 0.0) -> np.ndarray:
    """Perfect Gaussian quantile forecast [n, 3]."""
    return np.tile([level - Z90 * sigma, level, level + Z90 * sigma], (n, 1))


@pytest.fixture(scope="module")
def detector() -> ResidualDetector:
    rng = np.random.default_rng(10)
    calibrator = calibrate_from_residuals(rng.normal(size=2000), forecast(2000), LEVELS)
    return ResidualDetector(calibrator, sensitivity=0.5)


# ---------------------------------------------------------------- residual scorer
def test_spread_scorer_uses_side_specific_spread():
    quantiles = np.array([[8.0, 10.0, 14.0]] * 3)  # lower spread 2, upper spread 4
    scores = SpreadResidualScorer().score([14.0, 8.0, 10.0], quantiles, LEVELS)
    np.testing.assert_allclose(scores.signed, [1.0, -1.0, 0.0])
    np.testing.assert_allclose(scores.magnitude, [1.0, 1.0, 0.0])
    assert scores.direction.tolist() == ["up", "down", "up"]
    np.testing.assert_allclose(scores.lower, 8.0)
    np.testing.assert_allclose(scores.upper, 14.0)


def test_spread_scorer_interpolates_missing_levels_and_sorts_crossing_quantiles():
    levels = [0.05, 0.5, 0.95]
    quantiles = np.array([[0.0, 10.0, 20.0], [20.0, 10.0, 0.0]])  # second row crossed
    scores = SpreadResidualScorer(central_level=0.8).score([19.0, 1.0], quantiles, levels)
    expected_upper = 10.0 + (0.9 - 0.5) / (0.95 - 0.5) * 10.0
    np.testing.assert_allclose(scores.upper, expected_upper)
    np.testing.assert_allclose(scores.signed, [9.0 / (expected_upper - 10), -9.0 / (expected_upper - 10)])


def test_spread_floor_prevents_division_by_zero():
    scores = SpreadResidualScorer().score([1.0, 0.0], np.zeros((2, 3)), LEVELS)
    assert np.all(np.isfinite(scores.magnitude))
    assert scores.magnitude[0] > 1e6 and scores.magnitude[1] == 0.0


def test_nan_quantile_row_means_no_forecast():
    quantiles = forecast(3)
    quantiles[1] = np.nan
    scores = SpreadResidualScorer().score([0.5, 0.5, 0.5], quantiles, LEVELS)
    assert np.isnan(scores.signed[1]) and np.isnan(scores.expected[1])
    assert scores.direction.tolist() == ["up", None, "up"]


# ---------------------------------------------------------------- sensitivity
def test_sensitivity_mapping():
    assert sensitivity_to_alpha(0.0) == pytest.approx(1e-4)
    assert sensitivity_to_alpha(0.5) == pytest.approx(10**-2.5)
    assert sensitivity_to_alpha(1.0) == pytest.approx(0.1)
    for s in (0.0, 0.3, 0.5, 0.9):  # log scale: each +0.1 multiplies the false-alarm rate by 10 ** 0.3
        assert sensitivity_to_alpha(s + 0.1) / sensitivity_to_alpha(s) == pytest.approx(10**0.3)


# ---------------------------------------------------------------- detector on injected anomalies
def test_spikes_caught_with_direction(detector):
    rng = np.random.default_rng(11)
    values = rng.normal(size=3000)
    spikes = {400: 8.0, 1200: -8.0, 2100: 6.0, 2700: -6.0}
    for index, size in spikes.items():
        values[index] += size
    result = detector.detect(values, forecast(3000), LEVELS)
    for index, size in spikes.items():
        assert result.is_anomaly[index]
        assert result.direction[index] == ("up" if size > 0 else "down")
        assert result.score[index] > 0.9999
    assert result.is_anomaly.sum() <= len(spikes) + 30  # ~0.3 % of 3000 normal points
    assert all(d is None for d in result.direction[~result.is_anomaly])


def test_level_shift_caught_from_first_point(detector):
    rng = np.random.default_rng(12)
    values = rng.normal(size=2000)
    values[1000:] -= 6.0  # the forecast does not know about the shift
    result = detector.detect(values, forecast(2000), LEVELS)
    assert result.is_anomaly[1000:1005].all()
    assert set(result.direction[1000:1005]) == {"down"}
    assert result.is_anomaly[1000:].mean() > 0.9


def test_variance_burst_flags_far_above_base_rate(detector):
    rng = np.random.default_rng(13)
    values = rng.normal(size=6000)
    values[3000:3500] *= 5.0
    result = detector.detect(values, forecast(6000), LEVELS)
    burst_rate = result.is_anomaly[3000:3500].mean()
    assert burst_rate > 10 * detector.alpha
    assert result.is_anomaly[:3000].mean() < 3 * detector.alpha


def test_sensitivity_orders_number_of_flags():
    rng = np.random.default_rng(14)
    calibrator = calibrate_from_residuals(rng.normal(size=2000), forecast(2000), LEVELS)
    values = rng.normal(size=20_000)
    counts = [
        ResidualDetector(calibrator, sensitivity=s).detect(values, forecast(20_000), LEVELS).is_anomaly.sum()
        for s in (0.0, 0.5, 1.0)
    ]
    assert counts[0] < counts[1] < counts[2]
    assert 0.05 < counts[2] / 20_000 < 0.2


def test_missing_forecast_rows_give_nan_score(detector):
    quantiles = forecast(4)
    quantiles[2] = np.nan
    result = detector.detect([0.0, 9.0, 9.0, 0.0], quantiles, LEVELS)
    assert np.isnan(result.score[2]) and not result.is_anomaly[2] and result.direction[2] is None
    assert result.is_anomaly[1]


def test_per_series_calibration_selected_by_series_id():
    rng = np.random.default_rng(15)
    narrow = calibrate_from_residuals(rng.normal(size=2000), forecast(2000), LEVELS)
    # a series whose forecast spread is 4x too narrow: its own calibration absorbs that
    wide = calibrate_from_residuals(4 * rng.normal(size=2000), forecast(2000), LEVELS)
    detector = ResidualDetector(CalibrationSet(narrow, {"noisy": wide}))
    values = 4 * rng.normal(size=5000)
    own = detector.detect(values, forecast(5000), LEVELS, series_id="noisy").is_anomaly.mean()
    fallback = detector.detect(values, forecast(5000), LEVELS, series_id="other").is_anomaly.mean()
    assert own < 3 * detector.alpha < 0.1 < fallback


def test_detector_state_round_trip(detector):
    restored = ResidualDetector.from_state(json.loads(json.dumps(detector.to_state(), allow_nan=False)))
    rng = np.random.default_rng(16)
    values = rng.normal(size=500) * 3
    a = detector.detect(values, forecast(500), LEVELS)
    b = restored.detect(values, forecast(500), LEVELS)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.is_anomaly, b.is_anomaly)
    assert restored.sensitivity == detector.sensitivity
    scorer = SpreadResidualScorer(central_level=0.9)
    assert SpreadResidualScorer.from_state(scorer.to_state()).levels == scorer.levels


# ---------------------------------------------------------------- validation messages
@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"values": [[1.0]]}, r"values must be 1-dimensional; got shape \(1, 1\)"),
        ({"quantiles": np.zeros((3, 3))}, r"quantiles must have shape .* \(2, 3\); got \(3, 3\)"),
        ({"values": [1.0, np.inf]}, r"values must be finite; got inf at index 1"),
        (
            {"quantiles": [[0.0, np.nan, 1.0], [0.0, 0.0, 1.0]]},
            r"quantiles must be finite; got nan .* entirely NaN",
        ),
        ({"levels": [0.5, 0.1, 0.9]}, r"quantile_levels must be strictly increasing .* Sort the levels"),
        ({"levels": [0.2, 0.5, 0.8]}, r"quantile_levels .* do not cover the central interval \[0.1, 0.9\]"),
        ({"levels": [0.0, 0.5, 1.0]}, r"quantile_levels must be strictly increasing and inside \(0, 1\)"),
        ({"series_id": 3}, r"series_id must be a str or None; got 3"),
        ({"values": ["a", "b"]}, r"values must be numeric"),
    ],
)
def test_detect_validation_messages(detector, kwargs, pattern):
    args = {"values": [0.0, 1.0], "quantiles": forecast(2), "levels": LEVELS, "series_id": None} | kwargs
    with pytest.raises(ValueError, match=pattern):
        detector.detect(args["values"], args["quantiles"], args["levels"], series_id=args["series_id"])


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: sensitivity_to_alpha(1.5), r"sensitivity must lie in \[0, 1\]; got 1\.5"),
        (lambda: sensitivity_to_alpha(True), r"sensitivity must be a real number; got True"),
        (
            lambda: ResidualDetector("cal"),
            r"calibration must be a CalibrationSet or a fitted ConformalCalibrator",
        ),
        (lambda: ResidualDetector(ConformalCalibrator()), r"global_calibrator must be a fitted"),
        (
            lambda: SpreadResidualScorer(central_level=1.0),
            r"central_level must lie strictly between 0.0 and 1.0",
        ),
    ],
)
def test_constructor_validation_messages(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
