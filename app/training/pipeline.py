"""Train a forecaster on prepared data, evaluate it, and register it as a new version."""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import app
from app.anomaly import CalibrationSet, calibrate_from_residuals
from app.forecasting.forecaster import ForecasterSpec
from app.registry.manifest import (
    AnomalyState,
    CalibrationState,
    DataDescription,
    Manifest,
    ResidualSummary,
    Runtime,
    SeriesExtent,
    TrainingRun,
    VersionSummary,
)
from app.registry.quality import refusing_losses
from app.registry.store import Registry, VersionInfo, validate_alias, validate_model_name
from app.timestamps import datetime64_to_iso, utc_now
from app.training.config import Choice, TrainingConfig
from app.training.correction import CorrectionVerdict
from app.training.data.parsing import DEFAULT_TIME_COL, DEFAULT_VALUE_COL
from app.training.data.prepared import PreparedData, load_training_data
from app.training.data.reading import ReadOptions
from app.training.dataset import WindowDataset
from app.training.defaults import choose_config
from app.training.evaluation import Predictions, predict_origins, test_metrics
from app.training.fitting import fit_forecaster
from app.training.report import report_data
from app.training.trainer import TrainingHistory, TrainingProgress

MIN_SERIES_CALIBRATION = 50

Announce = Callable[[TrainingConfig, list[Choice]], None]


@dataclass(frozen=True)
class TrainingResult:
    version: VersionInfo
    manifest: Manifest
    history: TrainingHistory
    refused_alias: str | None = None  # the alias asked for but not pointed: the version loses to a baseline
    notices: tuple[str, ...] = ()  # what data preparation did that the user should know


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


def _training_run(config: TrainingConfig, history: TrainingHistory, choices: list[Choice]) -> TrainingRun:
    return TrainingRun(
        config=config,
        choices=choices,
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
    overrides: Mapping[str, object] | None = None,
    announce: Announce | None = None,
    alias: str | None = None,
    force: bool = False,
    progress: TrainingProgress | None = None,
    source: str = "<data>",
) -> TrainingResult:
    """Fit, calibrate, evaluate and register; nothing is registered if training is interrupted.

    A given `config` is used as is; without one, `choose_config` picks every field the user did not give
    in `overrides` from the data, and the choices are recorded in the manifest. `announce` sees the
    configuration and choices before fitting starts (the CLI prints them).
    """
    choices: list[Choice] = []
    if config is None:
        config, choices = choose_config(data, overrides or {})
    if announce is not None:
        announce(config, choices)
    validate_model_name(name)  # refuse a bad name or alias before training, not after
    if alias is not None:
        validate_alias(alias)
    pending = build_version(data, name, config, choices, progress=progress, source=source)
    return publish_version(registry, pending, alias=alias, force=force, notices=tuple(data.notices))


@dataclass(frozen=True)
class PendingVersion:
    """A fitted, evaluated version not yet registered: what a Ray task hands back to the driver to publish."""

    name: str
    tensors: dict[str, torch.Tensor]
    manifest: Manifest
    history: TrainingHistory
    validation_mae: float  # the median forecast's MAE over every validation window: the search's score


def build_version(
    data: PreparedData,
    name: str,
    config: TrainingConfig,
    choices: list[Choice] | None = None,
    *,
    progress: TrainingProgress | None = None,
    source: str = "<data>",
) -> PendingVersion:
    """Fit, calibrate and evaluate `config` on `data`, and write its manifest; touches no registry."""
    fitted = fit_forecaster(data, config, progress)
    forecaster, dataset, history, season = fitted.forecaster, fitted.dataset, fitted.history, fitted.season
    validation, interval_offsets = fitted.validation, fitted.interval_offsets
    test = predict_origins(forecaster, dataset, dataset.origins("test"))
    metrics = test_metrics(forecaster, dataset, test, season)
    calibration = _anomaly_calibration(forecaster.spec, dataset, validation)
    manifest = Manifest(
        name=name,
        created_at=utc_now(),
        code_version=app.__version__,
        runtime=Runtime(python=platform.python_version(), torch=torch.__version__),
        spec=forecaster.spec,
        training=_training_run(config, history, _with_verdict(choices or [], fitted.correction)),
        data=_data_description(data, forecaster.spec.window, source),
        metrics=metrics,
        season=season,
        interval_calibration=interval_offsets,
        anomaly=AnomalyState(calibration=CalibrationState.of(calibration)),
        residuals=_residual_summary(validation, forecaster.spec.median_index),
        report=report_data(forecaster.spec, dataset, data, test, validation, calibration),
    )
    median = validation.quantiles[:, :, forecaster.spec.median_index]  # [K, H, Q] -> [K, H]
    validation_mae = float(np.mean(np.abs(validation.targets - median)))
    return PendingVersion(name, forecaster.network.state_dict(), manifest, history, validation_mae)


def publish_version(
    registry: Registry,
    pending: PendingVersion,
    *,
    alias: str | None = None,
    force: bool = False,
    notices: tuple[str, ...] = (),
) -> TrainingResult:
    """Register a built version; the alias is refused (the version still registered) when it loses to a baseline."""
    name, manifest = pending.name, pending.manifest
    notices = notices + validation_notices(manifest.training.choices)
    refused = alias is not None and bool(refusing_losses(alias, VersionSummary.of(manifest), force=force))
    version = registry.publish(name, pending.tensors, manifest, alias=None if refused else alias, force=force)
    return TrainingResult(
        version, manifest, pending.history, refused_alias=alias if refused else None, notices=notices
    )


def _with_verdict(choices: list[Choice], correction: CorrectionVerdict | None) -> list[Choice]:
    """The configuration choices and, for a model that corrects a baseline, whether the correction was kept."""
    return choices if correction is None else [*choices, correction.choice()]


def validation_notices(choices: list[Choice]) -> tuple[str, ...]:
    """What was decided on the validation split after training, for the console and `--json`."""
    return tuple(f"{c.field} {c.value}: {c.reason}" for c in choices if c.source == "validation")


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
    force: bool = False,
    progress: TrainingProgress | None = None,
    overrides: Mapping[str, object] | None = None,
    announce: Announce | None = None,
    read_options: ReadOptions | None = None,
) -> TrainingResult:
    """Load `path` and train on it; `config` None chooses from the data (see `train_model`)."""
    data = load_training_data(
        path,
        time_col=time_col,
        value_col=value_col,
        id_col=id_col,
        min_length=min_length(config, overrides),
        read_options=read_options,
    )
    return train_model(
        data,
        name,
        registry,
        config,
        overrides=overrides,
        announce=announce,
        alias=alias,
        force=force,
        progress=progress,
        source=path.name,
    )


def min_length(config: TrainingConfig | None, overrides: Mapping[str, object] | None) -> int:
    """Points a series needs before any rule runs: the given window + horizon, else the least that splits."""
    if config is not None:
        return config.window + config.horizon
    given = overrides or {}
    window, horizon = given.get("window"), given.get("horizon")
    return (window if isinstance(window, int) else 2) + (horizon if isinstance(horizon, int) else 1)
