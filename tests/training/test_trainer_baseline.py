"""A model that corrects a naive baseline keeps the baseline itself when no epoch beats it on validation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from app.forecasting.baselines import baseline_forecast
from app.training.data.prepared import prepare
from app.training.fitting import fit_forecaster
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
