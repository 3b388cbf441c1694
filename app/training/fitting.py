"""Fit one forecaster on prepared data: splits, dataset, network, training, interval calibration.

This is the fitting half of a training run, shared by `train_model` (which then evaluates and registers),
the backtest (refits per origin) and the configuration search (fits per trial). Nothing here touches the
registry or the test split.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from app.forecasting.calendar import default_calendar_features
from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import NetworkConfig
from app.forecasting.scaling import Scaling
from app.forecasting.windows import SplitBounds
from app.training.config import TrainingConfig
from app.training.correction import CorrectionVerdict, judge_correction
from app.training.data.errors import DataValidationError
from app.training.data.prepared import PreparedData
from app.training.data.seasons import detect_season
from app.training.data.split_sizes import too_few_points
from app.training.dataset import WindowDataset
from app.training.evaluation import Predictions, calibrate_intervals, predict_origins
from app.training.trainer import TrainingHistory, TrainingProgress, fit

MIN_SPLIT_WINDOWS = 1


@dataclass(frozen=True)
class FittedForecaster:
    """A trained, interval-calibrated forecaster with what it was fitted on.

    `validation` holds the calibrated model's forecasts from every validation origin; `correction` says
    whether the network's correction to its baseline was kept (None without a baseline).
    """

    forecaster: Forecaster
    config: TrainingConfig
    dataset: WindowDataset
    bounds: list[SplitBounds]
    calendar: list[str]
    history: TrainingHistory
    season: int
    validation: Predictions
    interval_offsets: dict[str, list[float]]
    correction: CorrectionVerdict | None = None


def split_bounds(data: PreparedData, config: TrainingConfig) -> list[SplitBounds]:
    """Chronological train/validation/test rows per series; refuses series too short for any split."""
    bounds = []
    shortest = min(len(series.values) for series in data.series)
    for series in data.series:
        split = SplitBounds.from_fractions(len(series.values), config.val_fraction, config.test_fraction)
        for part in ("train", "val", "test"):
            if len(split.origins(part, config.window, config.horizon)) < MIN_SPLIT_WINDOWS:
                sizes = (config.window, config.horizon, config.val_fraction, config.test_fraction)
                raise DataValidationError(
                    too_few_points(
                        series.id,
                        len(series.values),
                        part,
                        *sizes,
                        patch_len=config.patch_len,
                        shortest=shortest,
                    )
                )
        bounds.append(split)
    return bounds


def training_season(data: PreparedData, bounds: list[SplitBounds]) -> int:
    """Season detected on the training rows of the longest series (1 when none)."""
    index = max(range(len(data.series)), key=lambda i: len(data.series[i].values))
    return detect_season(data.series[index].values[: bounds[index].train_end], data.frequency)


def calendar_features(config: TrainingConfig, frequency: str) -> list[str]:
    if config.calendar is False:
        return []
    features = default_calendar_features(frequency)
    if config.calendar is None and "hour_of_day" not in features:
        return []
    return features


def baseline_season(config: TrainingConfig, detected: int) -> int:
    """Season of the seasonal-naive baseline: the configured one, else the detected one (1 = last value)."""
    if config.baseline != "seasonal":
        return 1
    season = config.season if config.season is not None else detected
    return season if 1 <= season <= config.window else 1


def forecaster_spec(
    config: TrainingConfig, dataset: WindowDataset, frequency: str, calendar: list[str], season: int = 1
) -> ForecasterSpec:
    scaling = Scaling.fit(config.normalisation, torch.from_numpy(dataset.training_values()))
    network = NetworkConfig(
        cell=config.cell,
        input_size=config.patch_len * (1 + 2 * len(calendar)),
        hidden_size=config.hidden,
        num_layers=config.layers,
        horizon=config.horizon,
        num_quantiles=len(config.quantiles),
        dropout=config.dropout,
    )
    return ForecasterSpec(
        window=config.window,
        horizon=config.horizon,
        frequency=frequency,
        scaling=scaling,
        network=network,
        patch_len=config.patch_len,
        quantiles=tuple(config.quantiles),
        calendar_features=tuple(calendar),
        baseline=config.baseline,
        season=baseline_season(config, season),
    )


def fit_forecaster(
    data: PreparedData, config: TrainingConfig, progress: TrainingProgress | None = None
) -> FittedForecaster:
    """Train on the training split, stop early on validation, keep the correction only if it beats the
    baseline on validation (app/training/correction.py), then calibrate intervals on validation."""
    bounds = split_bounds(data, config)
    calendar = calendar_features(config, data.frequency)
    series = [(s.id, s.values, s.timestamps) for s in data.series]
    dataset = WindowDataset.build(series, bounds, config.window, config.horizon, calendar)
    season = training_season(data, bounds)
    spec = forecaster_spec(config, dataset, data.frequency, calendar, season)
    forecaster = Forecaster.create(spec, seed=config.seed)
    untrained = copy.deepcopy(forecaster.network.state_dict())  # with a baseline: exactly the baseline
    history = fit(forecaster, dataset, config, progress)
    validation = predict_origins(forecaster, dataset, dataset.origins("val"))
    correction = judge_correction(forecaster, dataset, validation)
    if correction is not None and not correction.kept:
        forecaster.network.load_state_dict(untrained)
        forecaster.network.train(False)
        validation = predict_origins(forecaster, dataset, dataset.origins("val"))
    interval_offsets = calibrate_intervals(forecaster, validation)
    validation = predict_origins(forecaster, dataset, dataset.origins("val"))
    return FittedForecaster(
        forecaster=forecaster,
        config=config,
        dataset=dataset,
        bounds=bounds,
        calendar=calendar,
        history=history,
        season=season,
        validation=validation,
        interval_offsets=interval_offsets,
        correction=correction,
    )
