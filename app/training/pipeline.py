"""Train a forecaster on prepared data, evaluate it, and register it as a new version."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import app
from app.anomaly import CalibrationSet, calibrate_from_residuals
from app.forecasting.calendar import default_calendar_features
from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import NetworkConfig
from app.forecasting.scaling import Scaling
from app.forecasting.windows import SplitBounds
from app.registry.manifest import (
    AnomalyState,
    CalibrationState,
    DataDescription,
    Manifest,
    ResidualSummary,
    Runtime,
    SeriesExtent,
    TrainingRun,
)
from app.registry.store import Registry, VersionInfo, validate_alias, validate_model_name
from app.timestamps import datetime64_to_iso, utc_now
from app.training.config import TrainingConfig
from app.training.data.errors import DataValidationError
from app.training.data.parsing import DEFAULT_TIME_COL, DEFAULT_VALUE_COL
from app.training.data.prepared import PreparedData, load_training_data
from app.training.data.seasons import detect_season
from app.training.dataset import WindowDataset
from app.training.evaluation import Predictions, calibrate_intervals, predict_origins, test_metrics
from app.training.report import report_data
from app.training.trainer import TrainingHistory, TrainingProgress, fit

MIN_SPLIT_WINDOWS = 1
MIN_SERIES_CALIBRATION = 50


@dataclass(frozen=True)
class TrainingResult:
    version: VersionInfo
    manifest: Manifest
    history: TrainingHistory


def _bounds(data: PreparedData, config: TrainingConfig) -> list[SplitBounds]:
    bounds = []
    for series in data.series:
        split = SplitBounds.from_fractions(len(series.values), config.val_fraction, config.test_fraction)
        for part in ("train", "val", "test"):
            if len(split.origins(part, config.window, config.horizon)) < MIN_SPLIT_WINDOWS:
                raise DataValidationError(
                    f"series {series.id!r} has {len(series.values)} points: too few for a {part} split with "
                    f"window={config.window} and horizon={config.horizon}; lower --window/--horizon or supply more data"
                )
        bounds.append(split)
    return bounds


def _calendar_features(config: TrainingConfig, frequency: str) -> list[str]:
    if config.calendar is False:
        return []
    features = default_calendar_features(frequency)
    if config.calendar is None and "hour_of_day" not in features:
        return []
    return features


def _spec(
    config: TrainingConfig, dataset: WindowDataset, frequency: str, calendar: list[str]
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
    )


def _anomaly_calibration(
    spec: ForecasterSpec, dataset: WindowDataset, validation: Predictions
) -> CalibrationSet:
    """Calibrate residual scores on one-step-ahead validation forecasts, globally and per series."""
    lead_one = validation.quantiles[:, 0, :]  # [K, H, Q] -> [K, Q]
    actual = validation.targets[:, 0]  # [K, H] -> [K]
    series_index = dataset.series_of(validation.origins)
    calibration = CalibrationSet(calibrate_from_residuals(actual, lead_one, spec.quantiles))
    if len(dataset.series) > 1:
        for index, series in enumerate(dataset.series):
            mask = series_index == index
            if mask.sum() >= MIN_SERIES_CALIBRATION:
                calibration.add(
                    series.id, calibrate_from_residuals(actual[mask], lead_one[mask], spec.quantiles)
                )
    return calibration


def _training_run(config: TrainingConfig, history: TrainingHistory) -> TrainingRun:
    return TrainingRun(
        config=config,
        best_epoch=history.best_epoch,
        best_val_loss=history.best_val_loss,
        stopped_early=history.stopped_early,
        seconds=round(history.seconds, 3),
        history=list(history.epochs),
    )


def _data_description(data: PreparedData, window: int, source: str) -> DataDescription:
    return DataDescription(
        source=source,
        fingerprint=data.fingerprint,
        frequency=data.frequency,
        rows=data.source_rows,
        series=[
            SeriesExtent(
                id=s.id,
                length=len(s.values),
                start=datetime64_to_iso(s.timestamps[0]),
                end=datetime64_to_iso(s.timestamps[-1]),
            )
            for s in data.series
        ],
        gaps=list(data.gaps),
        last_values={s.id: [float(v) for v in s.values[-window:]] for s in data.series[:16]},
        last_timestamps={s.id: datetime64_to_iso(s.timestamps[-1]) for s in data.series},
    )


def train_model(
    data: PreparedData,
    name: str,
    registry: Registry,
    config: TrainingConfig | None = None,
    *,
    alias: str | None = None,
    progress: TrainingProgress | None = None,
    source: str = "<data>",
) -> TrainingResult:
    """Fit, calibrate, evaluate and register; nothing is registered if training is interrupted."""
    config = config or TrainingConfig()
    validate_model_name(name)  # refuse a bad name or alias before training, not after
    if alias is not None:
        validate_alias(alias)
    bounds = _bounds(data, config)
    calendar = _calendar_features(config, data.frequency)
    series = [(s.id, s.values, s.timestamps) for s in data.series]
    dataset = WindowDataset.build(series, bounds, config.window, config.horizon, calendar)
    longest = max(data.series, key=lambda s: len(s.values))
    season = detect_season(longest.values[: bounds[data.series.index(longest)].train_end], data.frequency)
    forecaster = Forecaster.create(_spec(config, dataset, data.frequency, calendar), seed=config.seed)
    history = fit(forecaster, dataset, config, progress)
    validation = predict_origins(forecaster, dataset, dataset.origins("val"))
    interval_offsets = calibrate_intervals(forecaster, validation)
    validation = predict_origins(forecaster, dataset, dataset.origins("val"))
    test = predict_origins(forecaster, dataset, dataset.origins("test"))
    metrics = test_metrics(forecaster, dataset, test, season)
    calibration = _anomaly_calibration(forecaster.spec, dataset, validation)
    manifest = Manifest(
        name=name,
        created_at=utc_now(),
        code_version=app.__version__,
        runtime=Runtime(python=platform.python_version(), torch=torch.__version__),
        spec=forecaster.spec,
        training=_training_run(config, history),
        data=_data_description(data, forecaster.spec.window, source),
        metrics=metrics,
        season=season,
        interval_calibration=interval_offsets,
        anomaly=AnomalyState(calibration=CalibrationState.of(calibration)),
        residuals=_residual_summary(validation, forecaster.spec.median_index),
        report=report_data(forecaster.spec, dataset, data, test, validation, calibration),
    )
    version = registry.publish(name, forecaster.network.state_dict(), manifest, alias=alias)
    return TrainingResult(version=version, manifest=manifest, history=history)


def _residual_summary(validation: Predictions, median_index: int) -> ResidualSummary:
    residuals = validation.targets[:, 0] - validation.quantiles[:, 0, median_index]  # [K]
    q01, q05, q50, q95, q99 = (float(v) for v in np.quantile(residuals, [0.01, 0.05, 0.5, 0.95, 0.99]))
    return ResidualSummary(
        count=len(residuals),
        mean=float(np.mean(residuals)),
        std=float(np.std(residuals)),
        q01=q01,
        q05=q05,
        q50=q50,
        q95=q95,
        q99=q99,
    )


def train_file(
    path: Path,
    name: str,
    registry: Registry,
    config: TrainingConfig | None = None,
    *,
    time_col: str = DEFAULT_TIME_COL,
    value_col: str = DEFAULT_VALUE_COL,
    id_col: str | None = None,
    alias: str | None = None,
    progress: TrainingProgress | None = None,
) -> TrainingResult:
    config = config or TrainingConfig()
    data = load_training_data(
        path, time_col=time_col, value_col=value_col, id_col=id_col, min_length=config.window + config.horizon
    )
    return train_model(data, name, registry, config, alias=alias, progress=progress, source=path.name)
