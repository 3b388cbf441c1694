"""ConformalCalibrator / CalibrationSet: false-alarm rates on clean data, tail behaviour, state, validation."""

import json
import math

import numpy as np
import pytest

from app.anomaly import CalibrationSet, ConformalCalibrator, SpreadResidualScorer, calibrate_from_residuals

LEVELS = [0.1, 0.5, 0.9]
Q90 = {"gauss": 1.2815515655446004, "t3": 1.6377443572159062}  # q0.9 of N(0,1) and of Student-t(3)


def perfect_forecast(n: int, q90: float) -> np.ndarray:
    """Quantiles [n, 3] of a model that knows the noise distribution exactly."""
    return np.tile([-q90, 0.0, q90], (n, 1))


def draw(rng: np.random.Generator, dist: str, n: int) -> np.ndarray:
    return rng.normal(size=n) if dist == "gauss" else rng.standard_t(3, size=n)


def roundtrip(state: dict) -> dict:
    return json.loads(json.dumps(state, allow_nan=False))


@pytest.mark.parametrize("dist", ["gauss", "t3"])
def test_false_alarm_rate_matches_alpha_on_clean_data(dist):
    # One fixed calibration draw per distribution. At alpha = 1e-3 roughly 1 in 8 draws of 2000 calibration
    # points lands outside [0.5, 2] x alpha (sampling noise of the calibration set, see the module docstring);
    # the next test checks that there is no systematic bias over many draws.
    rng = np.random.default_rng(0)
    calibrator = calibrate_from_residuals(draw(rng, dist, 2000), perfect_forecast(2000, Q90[dist]), LEVELS)
    test = SpreadResidualScorer().score(draw(rng, dist, 50_000), perfect_forecast(50_000, Q90[dist]), LEVELS)
    scores = calibrator.score(test.magnitude)
    for alpha in (0.1, 0.01, 0.001):
        rate = float(np.mean(scores >= 1 - alpha))
        assert 0.5 * alpha <= rate <= 2 * alpha, (dist, alpha, rate)


def gauss_sf(x: float) -> float:
    return math.erfc(x / math.sqrt(2))  # P(|Z| > x)


def t3_sf(x: float) -> float:
    u = x / math.sqrt(3)
    return 1 - 2 * (u / (1 + u * u) + math.atan(u)) / math.pi  # P(|T3| > x)


@pytest.mark.parametrize(("dist", "sf"), [("gauss", gauss_sf), ("t3", t3_sf)])
def test_false_alarm_rate_unbiased_over_calibration_draws(dist, sf):
    ratios = {alpha: [] for alpha in (0.01, 1e-3, 1e-4)}
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        calibrator = ConformalCalibrator().fit(np.abs(draw(rng, dist, 2000)))
        for alpha, found in ratios.items():
            found.append(sf(calibrator.threshold(alpha)) / alpha)  # exact rate of this calibrator / target
    for alpha, found in ratios.items():
        geometric_mean = float(np.exp(np.mean(np.log(found))))
        assert 0.6 <= geometric_mean <= 1.5, (dist, alpha, geometric_mean)
        if alpha >= 1e-3:
            assert np.mean((np.array(found) >= 0.5) & (np.array(found) <= 2)) >= 0.75


def test_tail_gives_p_values_below_conformal_floor():
    rng = np.random.default_rng(2)
    calibrator = ConformalCalibrator().fit(np.abs(rng.normal(size=2000)))
    assert calibrator.tail is not None
    p = calibrator.p_value([0.0, 1.0, 3.0, 5.0, 8.0, np.inf])
    assert np.all(np.diff(p) <= 0)  # monotone non-increasing
    assert p[3] < 1 / 2001  # beyond the conformal floor
    assert p[-1] == 0.0
    assert calibrator.threshold(1e-4) < np.inf


def test_p_values_are_monotone_across_body_tail_boundary():
    rng = np.random.default_rng(3)
    calibrator = ConformalCalibrator().fit(np.abs(rng.standard_t(3, size=3000)))
    grid = np.linspace(0, 40, 20_001)
    assert np.all(np.diff(calibrator.p_value(grid)) <= 0)


def test_small_sample_falls_back_to_plain_conformal():
    sample = np.arange(1.0, 101.0)  # 100 points: only 5 above the 0.95 quantile
    calibrator = ConformalCalibrator().fit(sample)
    assert calibrator.tail is None
    np.testing.assert_allclose(calibrator.p_value([0.5, 100.0, 1e9]), [1.0, 2 / 101, 1 / 101])
    assert calibrator.threshold(1e-4) == np.inf


def test_tail_threshold_lowered_for_short_calibration_sets():
    rng = np.random.default_rng(8)
    calibrator = ConformalCalibrator().fit(np.abs(rng.normal(size=400)))  # 40 points above the 0.9 quantile
    assert calibrator.tail is not None
    assert calibrator.tail.fraction == pytest.approx(50 / 401)
    assert calibrator.threshold(1e-4) < np.inf


def test_threshold_is_inverse_of_p_value():
    rng = np.random.default_rng(4)
    calibrator = ConformalCalibrator().fit(np.abs(rng.normal(size=2000)))
    for alpha in (0.2, 0.1, 0.0999, 0.05, 0.01, 1e-3, 1e-5):
        t = calibrator.threshold(alpha)
        assert calibrator.p_value(t) <= alpha * (1 + 1e-9)
        assert calibrator.p_value(t * (1 - 1e-6)) > alpha


def test_sample_capped_by_deterministic_subsampling():
    rng = np.random.default_rng(5)
    data = np.abs(rng.normal(size=12_000))
    a = ConformalCalibrator(max_points=5000).fit(data)
    b = ConformalCalibrator(max_points=5000).fit(rng.permutation(data))
    assert a.n_calibration == 5000
    np.testing.assert_array_equal(a.sample, b.sample)
    assert a.sample[0] == data.min() and a.sample[-1] == data.max()


def test_calibrator_state_round_trip_is_exact():
    rng = np.random.default_rng(6)
    calibrator = ConformalCalibrator().fit(np.abs(rng.standard_t(4, size=2500)))
    restored = ConformalCalibrator.from_state(roundtrip(calibrator.to_state()))
    probe = np.abs(rng.standard_t(4, size=1000)) * 3
    np.testing.assert_array_equal(calibrator.p_value(probe), restored.p_value(probe))
    assert restored.tail == calibrator.tail


def test_calibration_set_falls_back_to_global_and_round_trips():
    rng = np.random.default_rng(7)
    global_cal = ConformalCalibrator().fit(np.abs(rng.normal(size=1000)))
    wide = ConformalCalibrator().fit(5 * np.abs(rng.normal(size=1000)))
    cal_set = CalibrationSet(global_cal, {"cpu": wide})
    assert cal_set.for_series("cpu") is wide
    assert cal_set.for_series("unknown") is global_cal
    assert cal_set.for_series(None) is global_cal
    restored = CalibrationSet.from_state(roundtrip(cal_set.to_state()))
    assert restored.series_ids == ["cpu"]
    probe = np.linspace(0, 20, 50)
    np.testing.assert_array_equal(restored.for_series("cpu").p_value(probe), wide.p_value(probe))
    np.testing.assert_array_equal(restored.for_series("x").p_value(probe), global_cal.p_value(probe))


def test_nan_magnitude_gives_nan_p_value():
    calibrator = ConformalCalibrator().fit(np.arange(1.0, 51.0))
    p = calibrator.p_value([np.nan, 1.0])
    assert np.isnan(p[0]) and not np.isnan(p[1])


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: ConformalCalibrator().fit([1.0, 2.0]), r"magnitudes must hold at least 10 .* got 2"),
        (lambda: ConformalCalibrator().fit([-1.0] + [1.0] * 20), r"magnitudes must be >= 0 .* -1\.0"),
        (
            lambda: ConformalCalibrator().fit([np.nan] + [1.0] * 20),
            r"magnitudes must be finite; got nan at index 0",
        ),
        (lambda: ConformalCalibrator().p_value([1.0]), r"not fitted .* Call fit"),
        (lambda: ConformalCalibrator(tail_quantile=1.5), r"tail_quantile must lie strictly between .* 1\.5"),
        (lambda: ConformalCalibrator(max_points=3), r"max_points must be an integer >= 10; got 3"),
        (lambda: ConformalCalibrator().fit(np.ones(20)).threshold(0.0), r"alpha must lie strictly .* 0\.0"),
        (
            lambda: CalibrationSet(ConformalCalibrator()),
            r"global_calibrator must be a fitted ConformalCalibrator",
        ),
        (lambda: ConformalCalibrator.from_state({"kind": "Other"}), r"state\['kind'\] is 'Other'"),
        (
            lambda: ConformalCalibrator.from_state([1, 2]),
            r"state must be a dict produced by ConformalCalibrator",
        ),
    ],
)
def test_validation_messages(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
