import numpy as np
import pytest
import torch

from app.forecasting.metrics import seasonal_naive_forecast
from app.forecasting.quantiles import (
    DEFAULT_QUANTILES,
    available_levels,
    interpolate_quantile,
    interval_interpolation,
    interval_quantiles,
    pinball_loss,
)
from app.forecasting.scaling import Scaling
from app.forecasting.windows import SplitBounds, sliding_windows


def test_sliding_windows_cover_every_origin_in_order():
    windows = sliding_windows(np.arange(6), 3)
    assert windows.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]


def test_sliding_windows_keep_trailing_feature_axis():
    assert sliding_windows(np.zeros((10, 4)), 5).shape == (6, 5, 4)


def test_window_longer_than_series_is_refused():
    with pytest.raises(ValueError, match="exceeds the series length"):
        sliding_windows(np.arange(3), 4)


def test_split_is_chronological_and_test_context_reaches_back():
    bounds = SplitBounds.from_fractions(100, val_fraction=0.2, test_fraction=0.2)
    assert (bounds.train_end, bounds.val_end) == (60, 80)
    train = bounds.origins("train", window=10, horizon=5)
    test = bounds.origins("test", window=10, horizon=5)
    assert train[0] == 10 and train[-1] + 5 <= 60
    assert test[0] == 80 and test[-1] + 5 == 100


def test_instance_scaling_uses_each_window_mean_and_std():
    windows = torch.tensor([[1.0, 2.0, 3.0], [10.0, 10.0, 40.0]])
    scaling = Scaling(mode="instance", global_loc=0.0, global_scale=1.0, floor=1e-6)
    loc, scale = scaling.stats(windows)
    torch.testing.assert_close(loc, torch.tensor([[2.0], [20.0]]))
    torch.testing.assert_close(scale, windows.std(dim=1, unbiased=False, keepdim=True))


def test_global_scaling_uses_training_statistics_and_last_mode_the_last_value():
    training = torch.tensor([1.0, 3.0])
    scaling = Scaling.fit("global", training)
    loc, scale = scaling.stats(torch.tensor([[100.0, 200.0]]))
    assert float(loc) == 2.0 and float(scale) == 1.0
    last = Scaling(mode="last", global_loc=0.0, global_scale=1.0, floor=1e-6)
    assert float(last.stats(torch.tensor([[1.0, 5.0]]))[0]) == 5.0


def test_constant_window_scale_is_floored_not_zero():
    scaling = Scaling(mode="instance", global_loc=0.0, global_scale=2.0, floor=0.002)
    _, scale = scaling.stats(torch.full((1, 5), 7.0))
    assert float(scale) == pytest.approx(0.002)


def test_pinball_loss_is_the_asymmetric_absolute_error():
    predicted = torch.tensor([[[0.0, 0.0]]])
    target = torch.tensor([[1.0]])
    loss = pinball_loss(predicted, target, torch.tensor([0.1, 0.9]))
    assert float(loss) == pytest.approx((0.1 + 0.9) / 2)


def test_interval_levels_map_to_quantile_pairs():
    assert interval_quantiles(80) == pytest.approx((0.1, 0.9))
    assert available_levels((0.025, 0.1, 0.5, 0.9, 0.975)) == [80.0, 95.0]


def test_seasonal_naive_repeats_the_last_season_and_season_one_is_the_random_walk():
    values = np.arange(10, dtype=float)
    assert seasonal_naive_forecast(values, np.array([6]), horizon=4, season=3).tolist() == [[3, 4, 5, 3]]
    assert seasonal_naive_forecast(values, np.array([6]), horizon=2, season=1).tolist() == [[5, 5]]


def test_all_interval_bounds_at_once_match_one_by_one_interpolation() -> None:
    forecasts = np.sort(np.random.default_rng(0).normal(size=(3, 5, len(DEFAULT_QUANTILES))), axis=-1)
    levels = (80.0, 95.0, 50.0, 99.0)  # 99 lies beyond the grid: clamped like the one-by-one version
    lower, upper, weight = interval_interpolation(DEFAULT_QUANTILES, levels)
    bounds = forecasts[..., lower] * (1.0 - weight) + forecasts[..., upper] * weight
    for k, level in enumerate(levels):
        low, high = interval_quantiles(level)
        np.testing.assert_allclose(
            bounds[..., 2 * k], interpolate_quantile(forecasts, DEFAULT_QUANTILES, low), rtol=1e-6
        )
        np.testing.assert_allclose(
            bounds[..., 2 * k + 1], interpolate_quantile(forecasts, DEFAULT_QUANTILES, high), rtol=1e-6
        )
