"""The training report PNG (headless matplotlib), drawn from a version's manifest alone.

Four panels: training/validation loss per epoch, test-period one-step forecasts of the first series with the
calibrated 80%/95% bands, the validation residual histogram, and test MAE / MASE next to the seasonal-naive and
random-walk baselines. Versions trained before the manifest carried a `report` section get the panels the manifest
can still support and a note on the others. The histogram draws no flagging thresholds: detection calibrates its
flags on the series it scores, not on these validation residuals.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from app.registry.manifest import EvaluationMetrics, ForecastSample, Manifest, ResidualHistogram, TrainingRun

REPORT_FILE = "report.png"
REPORT_SIZE_INCHES = (12.0, 8.0)
REPORT_DPI = 100  # -> 1200 x 800 pixels


def _note(axis: Axes, text: str) -> None:
    axis.text(0.5, 0.5, text, ha="center", va="center", transform=axis.transAxes, fontsize=9, color="0.4")
    axis.set_xticks([])
    axis.set_yticks([])


def _loss_panel(axis: Axes, training: TrainingRun) -> None:
    history = training.history
    axis.set_title("Training curves (pinball loss)")
    if not history:
        _note(axis, "no training history in the manifest")
        return
    epochs = [record.epoch for record in history]
    axis.plot(epochs, [record.train_loss for record in history], marker="o", label="train")
    axis.plot(epochs, [record.val_loss for record in history], marker="o", label="validation")
    best = training.best_epoch
    if best:
        axis.axvline(best, color="0.5", linestyle="--", linewidth=0.8, label=f"best epoch {best}")
    axis.set_xlabel("epoch")
    axis.legend(fontsize=8)


def _forecast_panel(axis: Axes, sample: ForecastSample | None) -> None:
    if sample is None:
        axis.set_title("Test-period forecast")
        _note(axis, "this version's manifest has no test sample\n(retrain to store one)")
        return
    x = np.array(sample.timestamps, dtype="datetime64[s]")
    axis.set_title(f"Test period, one step ahead: {sample.series}")
    axis.fill_between(x, sample.lower95, sample.upper95, color="tab:blue", alpha=0.15, label="95% band")
    axis.fill_between(x, sample.lower80, sample.upper80, color="tab:blue", alpha=0.3, label="80% band")
    axis.plot(x, sample.median, color="tab:blue", linewidth=1.0, label="forecast (median)")
    axis.plot(x, sample.actual, color="black", linewidth=0.8, label="actual")
    axis.legend(fontsize=8, loc="upper left")
    axis.tick_params(axis="x", labelrotation=20, labelsize=8)


def _residual_panel(axis: Axes, residuals: ResidualHistogram | None) -> None:
    axis.set_title("Validation residuals (in forecast spreads)")
    if residuals is None:
        _note(axis, "this version's manifest has no residual histogram\n(retrain to store one)")
        return
    edges = np.asarray(residuals.edges, dtype=float)
    counts = np.asarray(residuals.counts, dtype=float)
    axis.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:gray", alpha=0.7)
    axis.set_xlabel("residual / spread")


def _metrics_panel(axis: Axes, metrics: EvaluationMetrics) -> None:
    axis.set_title("Test MASE vs baselines (lower is better)")
    rows = metrics.by_forecaster()
    names = [f"{name.replace('_', ' ')}\nMAE {values.mae:.3g}" for name, values in rows.items()]
    positions = np.arange(len(rows))
    for offset, label, scaled in (
        (-0.2, "MASE (seasonal)", [values.mase_seasonal for values in rows.values()]),
        (0.2, "MASE (random walk)", [values.mase_random_walk for values in rows.values()]),
    ):
        heights = [np.nan if value is None else value for value in scaled]
        axis.bar(positions + offset, heights, width=0.4, label=label)
        for position, value in zip(positions, scaled, strict=True):
            if value is None:  # undefined (zero naive scale): say so where the bar would be
                axis.text(position + offset, 0.0, "n/a", ha="center", va="bottom", fontsize=8, color="0.4")
    axis.set_xticks(positions, names)
    axis.legend(fontsize=8)


def plot_training_report(manifest: Manifest, path: Path, title: str | None = None) -> Path:
    """Write the report of one version (from its manifest) to `path` as a 1200x800 PNG; returns `path`."""
    report = manifest.report
    figure, axes = plt.subplots(2, 2, figsize=REPORT_SIZE_INCHES, dpi=REPORT_DPI)
    try:
        _loss_panel(axes[0, 0], manifest.training)
        _forecast_panel(axes[0, 1], None if report is None else report.test_sample)
        _residual_panel(axes[1, 0], None if report is None else report.residuals)
        _metrics_panel(axes[1, 1], manifest.metrics)
        name = title or f"{manifest.name} v{manifest.version if manifest.version is not None else '?'}"
        figure.suptitle(f"Training report: {name}")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=REPORT_DPI)
    finally:
        plt.close(figure)
    return path
