"""Backtests: origins, the per-step scores against a hand computation, naive baselines, fits, plan errors."""

import math

import numpy as np
import pandas as pd
import pytest

from app.training.backtest import (
    OriginPlan,
    backtest_config,
    backtest_model,
    check_plan,
    fit_groups,
    min_fit_length,
    truncated,
)
from app.training.backtest_scores import (
    OriginForecasts,
    merge_steps,
    score_table,
    step_buckets,
    summarise,
)
from app.training.config import TrainingConfig
from app.training.data.errors import DataValidationError
from app.training.data.prepared import PreparedData, prepare
from app.training.data.series import SeriesData
from app.training.fitting import fit_forecaster, split_bounds

QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)
FAST = TrainingConfig(window=14, horizon=7, hidden=4, layers=1, epochs=1, batch_size=64, patience=1, seed=0)
PATTERN = np.array([3.0, 7.0, 4.0, 9.0, 1.0, 6.0, 2.0])  # one week, repeated exactly


def series_of(values: list[float]) -> SeriesData:
    stamps = pd.date_range("2024-01-01", periods=len(values), freq="D").to_numpy()
    return SeriesData("s", stamps, np.array(values, dtype=np.float64))


def weekly(weeks: int = 30, ids: tuple[str, ...] = ("a",)) -> PreparedData:
    frames = [
        pd.DataFrame(
            {
                "timestamp": pd.date_range("2024-01-01", periods=7 * weeks, freq="D"),
                "value": np.tile(PATTERN, weeks) + index,
                "id": series_id,
            }
        )
        for index, series_id in enumerate(ids)
    ]
    return prepare(pd.concat(frames), id_col="id", min_length=2)


# ------------------------------------------------------------------------------------------------ scores
def hand_case() -> OriginForecasts:
    """10 points, season 2, origins 6 and 8, horizon 2 (the numbers below are worked out by hand)."""
    series = series_of([0, 2, 1, 5, 2, 4, 3, 5, 4, 6])
    quantiles = np.array(
        [
            [[0, 3.5, 4, 4.5, 10], [0, 3, 4, 5, 10]],  # origin 6: actuals 3, 5 -> errors 1, -1
            [[0, 3.9, 4, 4.1, 10], [0, 6.5, 7, 7.5, 10]],  # origin 8: actuals 4, 6 -> errors 0, 1
        ]
    )
    return OriginForecasts(series, np.array([6, 8]), quantiles)


def test_scores_match_a_hand_computation():
    table = score_table([hand_case()], QUANTILES, season=2)
    first, second = table.per_step
    assert table.windows == 2 and table.note is None
    assert (first.first, first.last, second.label, table.overall.label) == (1, 1, "2", "1-2")
    assert first.model.mae == pytest.approx(0.5) and second.model.mae == pytest.approx(1.0)
    assert first.model.rmse == pytest.approx(math.sqrt(0.5)) and second.model.rmse == pytest.approx(1.0)
    # lag-2 naive MAE before origin 6: |1-0|,|5-2|,|2-1|,|4-5| -> 1.5; before origin 8 add |3-2|,|5-4| -> 4/3
    assert first.model.mase == pytest.approx((1 / 1.5 + 0) / 2)
    assert second.model.mase == pytest.approx((1 / 1.5 + 1 / (4 / 3)) / 2)
    # seasonal naive copies v[4], v[5] (origin 6) and v[6], v[7] (origin 8): every error is -1
    assert first.seasonal_naive.mae == second.seasonal_naive.mae == pytest.approx(1.0)
    # random walk repeats v[5] = 4 and v[7] = 5: errors 1, -1 and 1, -1
    assert first.random_walk.rmse == second.random_walk.rmse == pytest.approx(1.0)
    # 80% bands: origin 6 misses 3 at step 1, holds 5 at step 2 (inclusive); origin 8 the other way round
    assert first.coverage == second.coverage == {"80": 0.5, "95": 1.0}
    assert table.overall.model.mae == pytest.approx(0.75)
    assert table.overall.model.rmse == pytest.approx(math.sqrt(0.75))
    assert table.overall.coverage == {"80": 0.5, "95": 1.0}


def test_merged_steps_equal_the_scores_taken_over_them():
    table = score_table([hand_case()], QUANTILES, season=2)
    merged, overall = merge_steps(table.per_step), table.overall
    for name, scores in merged.by_forecaster().items():
        expected = overall.by_forecaster()[name]
        assert scores.mae == pytest.approx(expected.mae)
        assert scores.rmse == pytest.approx(expected.rmse)
        assert scores.mase == pytest.approx(expected.mase)
    assert merged.coverage == pytest.approx(overall.coverage)


def test_long_horizons_are_summarised_in_doubling_buckets():
    assert step_buckets(24) == [(1, 1), (2, 2), (3, 3), (4, 6), (7, 12), (13, 24)]
    assert step_buckets(2) == [(1, 1), (2, 2)]
    assert step_buckets(7) == [(1, 1), (2, 2), (3, 3), (4, 6), (7, 7)]
    table = score_table([hand_case()], QUANTILES, season=2)
    assert summarise(table) == table.per_step  # short: every step


def test_a_zero_naive_scale_leaves_mase_undefined_and_says_why():
    series = series_of([1, 2] * 6)  # repeats exactly at lag 2
    forecasts = OriginForecasts(series, np.array([8, 10]), np.zeros((2, 2, len(QUANTILES))))
    table = score_table([forecasts], QUANTILES, season=2)
    assert table.overall.model.mase is None and table.per_step[0].seasonal_naive.mase is None
    assert table.note is not None and "every origin" in table.note and "lag-2" in table.note


# ------------------------------------------------------------------------------------------------ origins
def test_origins_count_back_from_the_end_stride_apart():
    assert OriginPlan(horizon=3, origins=3).positions(20).tolist() == [11, 14, 17]
    assert OriginPlan(horizon=3, origins=3, stride=1).positions(20).tolist() == [15, 16, 17]
    assert fit_groups(5, None) == [range(0, 5)]
    assert fit_groups(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]


def test_truncated_data_ends_before_each_origin():
    data = weekly(ids=("a", "b"))
    known = truncated(data, [20, 30])
    assert [len(s) for s in known.series] == [20, 30]
    assert np.array_equal(known.series[1].values, data.series[1].values[:30])
    assert known.fingerprint != data.fingerprint


def test_min_fit_length_is_exactly_what_fitting_accepts():
    config = TrainingConfig(window=24, horizon=6)
    shortest = min_fit_length(config, 6)
    for length, accepted in ((shortest, True), (shortest - 1, False)):
        data = prepare(
            pd.DataFrame(
                {
                    "timestamp": pd.date_range("2024-01-01", periods=length, freq="h"),
                    "value": np.sin(np.arange(length)),
                }
            ),
            min_length=2,
        )
        if accepted:
            split_bounds(data, config)
        else:
            with pytest.raises(DataValidationError):
                split_bounds(data, config)


def test_a_plan_that_does_not_fit_names_the_options_that_would():
    data = weekly(weeks=10)  # 70 points
    plan = OriginPlan(horizon=7, origins=10)
    with pytest.raises(DataValidationError) as info:
        check_plan(data, plan, lambda _h: 14, "the model's window of 14")
    message = str(info.value)
    assert "series 'a' has 70 points" in message and "the model's window of 14" in message
    assert "--origins 8" in message and "--stride 5" in message and "--horizon 5" in message
    for fitting in (
        OriginPlan(horizon=7, origins=8),
        OriginPlan(horizon=7, origins=10, stride=5),
        OriginPlan(horizon=5, origins=10),
    ):
        check_plan(data, fitting, lambda _h: 14, "")


# ------------------------------------------------------------------------------------------------ runs
@pytest.mark.slow
def test_naive_baselines_are_exact_on_a_pure_seasonal_series():
    data = weekly()
    result = backtest_config(data, FAST, OriginPlan(horizon=7, origins=5), refit_every=2)
    assert result.season == 7 and result.fits == 3 and result.mode == "config"
    table = result.scores
    for step in (*table.per_step, table.overall):
        assert step.seasonal_naive.mae == 0.0 and step.seasonal_naive.rmse == 0.0
        assert step.seasonal_naive.mase is None  # the seasonal-naive scale is 0 on a pure season
    values = data.series[0].values
    origins = OriginPlan(horizon=7, origins=5).positions(len(values))
    errors = values[origins - 1][:, None] - values[origins[:, None] + np.arange(7)]  # last value - actual
    walk = [step.random_walk.mae for step in table.per_step]
    assert walk == pytest.approx(np.abs(errors).mean(axis=0).tolist())
    assert table.overall.random_walk.rmse == pytest.approx(float(np.sqrt(np.mean(errors**2))))
    assert (
        result.origin_times[-1] == "2024-07-22T00:00:00Z"
    )  # 210 days: the last origin is day 203 (leap year)


@pytest.mark.slow
def test_a_registered_model_forecasts_every_series_with_its_own_weights():
    data = weekly(ids=("a", "b"))
    forecaster = fit_forecaster(data, FAST).forecaster
    result = backtest_model(data, forecaster, OriginPlan(horizon=3, origins=4, stride=2), "weekly v1")
    assert (result.mode, result.fits, result.series, result.horizon, result.stride) == ("model", 0, 2, 3, 2)
    assert result.scores.windows == 8 and len(result.scores.per_step) == 3
    assert result.levels == [80.0, 95.0] and set(result.scores.overall.coverage) == {"80", "95"}
    assert len(result.sample.median) == 3 and set(result.sample.bands) == {"80", "95"}
    with pytest.raises(
        DataValidationError, match=r"--horizon 8 is beyond weekly v1's horizon of 7; use --horizon 7"
    ):
        backtest_model(data, forecaster, OriginPlan(horizon=8), "weekly v1")
    hourly = prepare(
        pd.DataFrame(
            {"timestamp": pd.date_range("2024-01-01", periods=200, freq="h"), "value": np.arange(200.0)}
        ),
        min_length=2,
    )
    with pytest.raises(DataValidationError, match=r"frequency is 'h' but weekly v1 was trained on 'D' data"):
        backtest_model(hourly, forecaster, OriginPlan(horizon=7), "weekly v1")
