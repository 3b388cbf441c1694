"""MASE scales: a zero or missing denominator is explicit (None with the reason), never NaN or inf."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.forecasting.metrics import naive_scale, scaled_mae


@pytest.mark.parametrize(
    "values", [np.full(50, 7.0), np.zeros(50), np.tile([0.0, 3.0], 25)], ids=["constant", "zeros", "period-2"]
)
def test_zero_naive_scale_is_none_with_the_reason(values: np.ndarray) -> None:
    lag = 2  # period-2 values repeat exactly at lag 2, though not at lag 1
    scale = naive_scale(values, lag)
    assert scale.value is None
    assert scale.reason is not None and "lag 2" in scale.reason and "is 0" in scale.reason


def test_too_few_training_rows_is_none_with_the_reason() -> None:
    scale = naive_scale(np.arange(5.0), 24)
    assert scale.value is None
    assert scale.reason is not None and "only 5 training rows" in scale.reason


def test_defined_scale_is_the_in_sample_naive_mae() -> None:
    values = np.array([0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 2.0, 0.0])  # intermittent, yet not repeating at lag 1
    scale = naive_scale(values, 1)
    assert scale.reason is None
    assert scale.value == pytest.approx((4 + 4 + 2 + 2) / 7)


def test_scaled_mae_leaves_out_rows_without_a_scale() -> None:
    errors = np.array([[1.0, -3.0], [5.0, 5.0], [2.0, 0.0]])  # [K=3, H=2]
    scales = np.array([2.0, np.nan, 1.0])  # row 1's series has no scale
    assert scaled_mae(errors, scales) == pytest.approx(np.mean([0.5, 1.5, 2.0, 0.0]))


def test_scaled_mae_without_any_scale_is_none_not_nan() -> None:
    with np.errstate(all="raise"):  # no division by zero is even attempted
        value = scaled_mae(np.ones((4, 3)), np.full(4, np.nan))
    assert value is None


def test_scaled_mae_is_finite_when_defined() -> None:
    value = scaled_mae(np.zeros((3, 1)), np.array([1e-9, 2.0, 3.0]))
    assert value is not None and math.isfinite(value) and value == 0.0
