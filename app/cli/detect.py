"""`tswatch detect`: score a CSV/Parquet file offline with a registered model; write scores and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch
import typer

from app.cli.models import parse_reference
from app.cli.output import console, fail
from app.errors import TswatchError
from app.registry.factory import open_registry
from app.serving.detection import score_all
from app.serving.inference import ScoredSeries, SeriesInput
from app.settings import Settings
from app.training.data.errors import DataValidationError
from app.training.data.parsing import DEFAULT_TIME_COL, DEFAULT_VALUE_COL
from app.training.data.prepared import load_training_data


def detections_frame(scored: ScoredSeries) -> pd.DataFrame:
    """One row per scored point (the fields of `ScoredPoint`), after a `series` column."""
    frame = pd.DataFrame([point.__dict__ for point in scored.points()])
    frame.insert(0, "series", scored.item.id)
    return frame


def plot_detections(frame: pd.DataFrame, title: str, path: Path) -> None:
    """Values, the one-step forecast band and flagged points, one panel per series."""
    groups = list(frame.groupby("series", sort=False))
    figure, axes = plt.subplots(len(groups), 1, figsize=(12, 3.2 * len(groups)), squeeze=False)
    for axis, (series_id, rows) in zip(axes[:, 0], groups, strict=True):
        axis_column = "timestamp" if rows["timestamp"].notna().all() else "index"
        x = rows[axis_column]
        axis.fill_between(
            x, rows["lower"], rows["upper"], color="tab:blue", alpha=0.2, label="forecast 80% band"
        )
        axis.plot(x, rows["value"], color="black", linewidth=0.8, label="value")
        axis.plot(x, rows["expected"], color="tab:blue", linewidth=0.8, label="forecast")
        flagged = rows[rows["is_anomaly"]]
        axis.scatter(
            flagged[axis_column],
            flagged["value"],
            color="tab:red",
            zorder=3,
            s=18,
            label=f"anomaly ({len(flagged)})",
        )
        axis.set_title(f"{title}: {series_id}")
        axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def detect(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file to score.", exists=True, dir_okay=False)],
    model: Annotated[str, typer.Option(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    out: Annotated[Path, typer.Option(help="CSV file for the per-point scores.")] = Path("scores.csv"),
    plot: Annotated[
        Path | None, typer.Option(help="PNG file for a plot of values, band and anomalies.")
    ] = None,
    time_col: Annotated[str, typer.Option(help="Timestamp column.")] = DEFAULT_TIME_COL,
    value_col: Annotated[str, typer.Option(help="Value column.")] = DEFAULT_VALUE_COL,
    id_col: Annotated[str | None, typer.Option(help="Series id column (long format).")] = None,
    sensitivity: Annotated[float, typer.Option(min=0.0, max=1.0, help="0..1, see the README.")] = 0.5,
) -> None:
    """Score every point of a file against its one-step-ahead forecast."""
    settings = Settings()
    torch.set_num_threads(settings.torch_threads)
    name, version, alias = parse_reference(model)
    try:
        registry = open_registry(settings)
        loaded = registry.load(registry.resolve(name, version=version, alias=alias))
        window = loaded.forecaster.spec.window
        prepared = load_training_data(
            data, time_col=time_col, value_col=value_col, id_col=id_col, min_length=window + 1
        )
    except (TswatchError, DataValidationError) as error:
        fail(getattr(error, "detail", str(error)))
    items = [SeriesInput(series.id, series.values, series.timestamps) for series in prepared.series]
    try:
        scored = score_all(loaded.forecaster, loaded.manifest.calibration(), items, sensitivity)
    except TswatchError as error:
        fail(error.detail)
    frame = pd.concat([detections_frame(series) for series in scored], ignore_index=True)
    frame.to_csv(out, index=False)
    anomalies = int(frame["is_anomaly"].sum())
    console.print(
        f"{name} v{loaded.version}: {anomalies} anomalies in {len(frame)} points (sensitivity {sensitivity}); "
        f"scores written to {out}",
        soft_wrap=True,
    )
    if plot is not None:
        plot_detections(frame, f"{name} v{loaded.version}", plot)
        console.print(f"plot written to {plot}", soft_wrap=True)


def register(cli: typer.Typer) -> None:
    cli.command()(detect)
