"""Keep the network's correction to its naive baseline only when it lowers the validation MAE.

Early stopping keeps the epoch with the lowest validation pinball loss over every quantile, and that loss
improves as soon as the quantile heads learn a spread, even when the median (the point forecast the test
metrics and the quality flag judge) gets worse than the baseline it corrects. Measured on the public
datasets (bench/public_datasets.py) the kept epoch's median lost to its own baseline on validation on taylor,
wineind, sunspots and msft, and then on test on the first three.

The rule: after training, compare the median forecast's MAE with the baseline's on every validation window
(data units, pooled over series as the test metrics are); when the model does not beat its baseline (beyond
the float rounding the quality flag tolerates, app/registry/quality.py), the correction is dropped and the
untrained network (exactly the baseline, the state training started from) is kept. Intervals are calibrated
afterwards either way. The verdict is recorded as a choice of field `correction` with source `validation`
and shown to the user as a notice. The training history still names the epoch early stopping kept.

Not adopted (measured on the nine public datasets, bench/public_datasets.py): choosing the epoch by the
median's validation MAE instead of the pinball loss (airpassengers 0.52 -> 0.72, nile 1.002 -> 1.011 of the
better naive MAE), and shrinking the correction by a factor fitted on validation (airpassengers 0.52 -> 0.73,
co2 0.28 -> 0.31: too few validation windows to fit it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.forecasting.forecaster import Forecaster
from app.forecasting.metrics import seasonal_naive_forecast
from app.registry.quality import LOSS_TOLERANCE
from app.training.config import Choice
from app.training.dataset import WindowDataset
from app.training.evaluation import Predictions

CORRECTION_FIELD = "correction"


@dataclass(frozen=True)
class CorrectionVerdict:
    """Whether the trained correction is kept, with the validation MAEs it was decided on."""

    kept: bool
    baseline: str  # "last" | "seasonal"
    season: int
    model_mae: float
    baseline_mae: float

    def reason(self) -> str:
        naive = f"seasonal naive ({self.season})" if self.baseline == "seasonal" else "last value"
        compared = f"validation MAE {self.model_mae:.4g} against {naive} {self.baseline_mae:.4g}"
        if self.kept:
            return f"the trained correction beats its baseline: {compared}"
        return f"the trained correction does not beat its baseline, so the model forecasts it: {compared}"

    def choice(self) -> Choice:
        return Choice(CORRECTION_FIELD, "kept" if self.kept else "dropped", self.reason(), "validation")


def judge_correction(
    forecaster: Forecaster, dataset: WindowDataset, validation: Predictions
) -> CorrectionVerdict | None:
    """The verdict on a forecaster that corrects a baseline (None for a plain network or no windows)."""
    spec = forecaster.spec
    if spec.baseline == "none" or not len(validation.origins):
        return None
    median = validation.quantiles[:, :, spec.median_index]  # [K, H, Q] -> [K, H]
    season = spec.season if spec.baseline == "seasonal" else 1
    values = dataset.values.astype(np.float64)
    naive = seasonal_naive_forecast(values, validation.origins, spec.horizon, season)  # [K, H]
    model_mae = float(np.mean(np.abs(median - validation.targets)))
    baseline_mae = float(np.mean(np.abs(naive - validation.targets)))
    kept = model_mae < baseline_mae * (1 - LOSS_TOLERANCE)  # a tie within float rounding is no gain
    return CorrectionVerdict(kept, spec.baseline, season, model_mae, baseline_mae)
