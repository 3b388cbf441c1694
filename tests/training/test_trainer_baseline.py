"""A model that corrects a naive baseline keeps the baseline itself when no epoch beats it on validation, and
drops its correction when the median forecast does not beat the baseline's validation MAE."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from app.forecasting.baselines import baseline_forecast
from app.registry.factory import open_registry
from app.settings import Settings
from app.training.correction import judge_correction
from app.training.data.prepared import prepare
from app.training.evaluation import predict_origins
from app.training.fitting import fit_forecaster
from app.training.pipeline import train_model
from tests.conftest import TINY_CONFIG, synthetic_frame


def test_a_run_that_never_beats_its_baseline_keeps_the_baseline() -> None:
    data = prepare(synthetic_frame(600), min_length=60)
    config = replace(TINY_CONFIG, baseline="last", lr=50.0, epochs=2, patience=2)  # diverges at once
    fitted = fit_forecaster(data, config)
    assert fitted.history.best_epoch == 0
    assert fitted.history.best_val_loss <= min(record.val_loss for record in fitted.history.epochs)
    windows, calendar = fitted.dataset.inputs(fitted.dataset.origins("test")[:8])  # [8, L], [8, L, C]
    median = fitted.forecaster.predict(windows, calendar)[:, :, fitted.forecaster.spec.median_index]  # [8, H]
    expected = baseline_forecast(torch.from_numpy(windows), "last", 1, config.horizon)  # [8, H]
    assert expected is not None
    np.testing.assert_allclose(median, expected.numpy(), rtol=1e-5)


def test_a_correction_that_loses_to_its_baseline_on_validation_is_dropped() -> None:
    data = prepare(synthetic_frame(600), min_length=60)
    fitted = fit_forecaster(data, replace(TINY_CONFIG, baseline="last", epochs=1))
    forecaster, dataset = fitted.forecaster, fitted.dataset
    with torch.no_grad():
        forecaster.network.head.weight.zero_()
        forecaster.network.head.bias.fill_(5.0)  # every quantile 5 window-scales above the baseline
    validation = predict_origins(forecaster, dataset, dataset.origins("val"))
    verdict = judge_correction(forecaster, dataset, validation)
    assert verdict is not None and not verdict.kept
    assert verdict.model_mae > verdict.baseline_mae
    choice = verdict.choice()
    assert (choice.field, choice.value, choice.source) == ("correction", "dropped", "validation")
    assert "last value" in choice.reason


def test_the_diverged_run_forecasts_its_baseline_and_records_the_dropped_correction() -> None:
    data = prepare(synthetic_frame(600), min_length=60)
    fitted = fit_forecaster(data, replace(TINY_CONFIG, baseline="last", lr=50.0, epochs=2, patience=2))
    assert fitted.correction is not None and not fitted.correction.kept  # a tie is not a gain
    assert abs(fitted.correction.model_mae / fitted.correction.baseline_mae - 1) < 1e-5


def test_a_correction_that_helps_is_kept_recorded_and_shown(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    registry = open_registry(Settings(models_dir=tmp_path / "models"))
    try:
        data = prepare(synthetic_frame(900), min_length=60)
        config = replace(TINY_CONFIG, baseline="last", epochs=8, patience=8)  # last value misses the cycle
        result = train_model(data, "corrected", registry, config)
        (choice,) = [c for c in result.manifest.training.choices if c.field == "correction"]
        assert (choice.value, choice.source) == ("kept", "validation")
        assert any(notice.startswith("correction kept:") for notice in result.notices)
        assert registry.load(result.version).manifest.training.choices == result.manifest.training.choices
    finally:
        registry.database.dispose()


def test_a_plain_network_has_no_verdict() -> None:
    data = prepare(synthetic_frame(600), min_length=60)
    fitted = fit_forecaster(data, replace(TINY_CONFIG, baseline="none", epochs=1))
    assert fitted.correction is None
