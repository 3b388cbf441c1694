"""SpreadResidualScorer (the training report's residual scale) and the sensitivity mapping."""

import numpy as np
import pytest

from app.anomaly import SpreadResidualScorer, sensitivity_to_alpha

LEVELS = [0.1, 0.5, 0.9]
Z90 = 1.2815515655446004


def forecast(n: int, sigma: float = 1.0, level: float = 0.0) -> np.ndarray:
    """Perfect Gaussian quantile forecast [n, 3]."""
    return np.tile([level - Z90 * sigma, level, level + Z90 * sigma], (n, 1))


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
