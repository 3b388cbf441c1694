"""The backtest PNG (headless matplotlib, as the training report in `app.cli.plots`).

Two panels: MAE per horizon step of the model next to seasonal naive and the random walk, and the last origin
of the first series: its recent history, the actuals and the model's forecast with the 80%/95% bands.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from app.cli.plots import REPORT_DPI
from app.training.backtest import BacktestResult, OriginSample

BACKTEST_SIZE_INCHES = (12.0, 5.0)  # -> 1200 x 500 pixels
BAND_ALPHA = {"95": 0.15, "80": 0.3}
STYLES = {"model": "-", "seasonal_naive": "--", "random_walk": ":"}  # the baselines coincide when season is 1


def _mae_panel(axis: Axes, result: BacktestResult) -> None:
    steps = [row.first for row in result.scores.per_step]
    axis.set_title(f"MAE per horizon step ({result.scores.windows} forecasts)")
    for name, style in STYLES.items():
        values = [row.by_forecaster()[name].mae for row in result.scores.per_step]
        marker = "o" if len(steps) <= 48 else None
        axis.plot(steps, values, style, marker=marker, markersize=3, label=name.replace("_", " "))
    axis.set_xlabel("horizon step")
    axis.set_ylabel("MAE")
    axis.set_ylim(bottom=0.0)
    axis.legend(fontsize=8)


def _sample_panel(axis: Axes, sample: OriginSample) -> None:
    history_x = np.array([stamp.rstrip("Z") for stamp in sample.history_timestamps], dtype="datetime64[s]")
    x = np.array([stamp.rstrip("Z") for stamp in sample.timestamps], dtype="datetime64[s]")
    axis.set_title(f"Last origin, series {sample.series!r}: forecast with intervals")
    for level in sorted(sample.bands, key=float, reverse=True):
        lower, upper = sample.bands[level]
        axis.fill_between(
            x, lower, upper, color="tab:blue", alpha=BAND_ALPHA.get(level, 0.2), label=f"{level}% band"
        )
    axis.plot(x, sample.median, color="tab:blue", linewidth=1.2, label="forecast (median)")
    axis.plot(history_x, sample.history, color="0.5", linewidth=0.8, label="history")
    axis.plot(x, sample.actual, color="black", linewidth=0.9, label="actual")
    if len(x):
        axis.axvline(x[0], color="0.5", linestyle="--", linewidth=0.8)
    axis.legend(fontsize=8, loc="upper left")
    axis.tick_params(axis="x", labelrotation=20, labelsize=8)


def plot_backtest(result: BacktestResult, path: Path) -> Path:
    """Write the backtest figure to `path` as a PNG; returns `path`."""
    figure, axes = plt.subplots(1, 2, figsize=BACKTEST_SIZE_INCHES, dpi=REPORT_DPI)
    try:
        _mae_panel(axes[0], result)
        _sample_panel(axes[1], result.sample)
        figure.suptitle(
            f"Backtest of {result.subject}: {result.origins} origins {result.stride} apart, "
            f"horizon {result.horizon}, season {result.season}"
        )
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=REPORT_DPI)
    finally:
        plt.close(figure)
    return path
