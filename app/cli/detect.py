"""`tswatch detect`: score a CSV/Parquet file offline, with a registered model's forecasts or model-less (the
detector's self-learned forecaster); write scores and a plot.

The file's rows are read as they are, in file order per series: duplicate and out-of-order timestamps and empty
values are readings answered unscored (`sampling` says why), exactly as `/v1/detect` answers them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import typer

from app.anomaly import DetectorConfig
from app.cli.models import parse_reference
from app.cli.output import console, fail
from app.errors import TswatchError
from app.forecasting.forecaster import Forecaster
from app.registry.factory import open_registry
from app.serving.detection import DetectOptions, score_all
from app.serving.inference import SeriesInput
from app.serving.scored_series import ScoredSeries
from app.settings import Settings
from app.training.data.errors import DataValidationError
from app.training.data.parsing import (
    DEFAULT_TIME_COL,
    DEFAULT_VALUE_COL,
    check_columns,
    parse_ids,
    parse_times,
    parse_values,
)
from app.training.data.reading import read_table
from app.training.data.series import split_series


def read_series(path: Path, time_col: str, value_col: str, id_col: str | None) -> list[SeriesInput]:
    """The file's series as they are (rows in file order per id; empty values are NaN: missing readings)."""
    source = str(path)
    frame = read_table(path)
    check_columns(frame, [time_col, value_col] + ([id_col] if id_col else []), source)
    if frame.empty:
        raise DataValidationError(f"{source}: no data rows (only a header)")
    times = parse_times(frame[time_col], time_col, source)
    values = parse_values(frame[value_col], value_col, source)
    ids = parse_ids(frame[id_col], id_col, source) if id_col else np.full(len(frame), value_col, dtype=object)
    return [
        SeriesInput(series_id, vals, stamps.view("datetime64[ns]"))
        for series_id, stamps, vals, _rows in split_series(ids, times, values)
    ]


def detections_frame(scored: ScoredSeries) -> pd.DataFrame:
    """One row per scored point (the fields of `ScoredPoint`), after a `series` column."""
    frame = pd.DataFrame([point.__dict__ for point in scored.points()])
    frame.insert(0, "series", scored.item.id)
    return frame


def plot_detections(frame: pd.DataFrame, title: str, path: Path) -> None:
    """Values, the expected value and its band, and flagged points, one panel per series."""
    groups = list(frame.groupby("series", sort=False))
    figure, axes = plt.subplots(len(groups), 1, figsize=(12, 3.2 * len(groups)), squeeze=False)
    for axis, (series_id, rows) in zip(axes[:, 0], groups, strict=True):
        axis_column = "timestamp" if rows["timestamp"].notna().all() else "index"
        x = rows[axis_column]
        axis.fill_between(x, rows["lower"], rows["upper"], color="tab:blue", alpha=0.2, label="expected band")
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
    model: Annotated[
        str | None,
        typer.Option(help="NAME, NAME@VERSION or NAME@ALIAS; omitted: the self-learning detector, no model."),
    ] = None,
    out: Annotated[Path, typer.Option(help="CSV file for the per-point scores.")] = Path("scores.csv"),
    plot: Annotated[
        Path | None, typer.Option(help="PNG file for a plot of values, band and anomalies.")
    ] = None,
    time_col: Annotated[str, typer.Option(help="Timestamp column.")] = DEFAULT_TIME_COL,
    value_col: Annotated[str, typer.Option(help="Value column.")] = DEFAULT_VALUE_COL,
    id_col: Annotated[str | None, typer.Option(help="Series id column (long format).")] = None,
    sensitivity: Annotated[float, typer.Option(min=0.0, max=1.0, help="0..1, see the README.")] = 0.5,
    learning_points: Annotated[
        int | None,
        typer.Option(
            min=20, max=10_000, help="Readings the detector learns from before it scores (default 100)."
        ),
    ] = None,
) -> None:
    """Score every point of a file with the one detector (the same scores as /v1/detect or a stream)."""
    settings = Settings()
    torch.set_num_threads(settings.torch_threads)
    config = DetectorConfig() if learning_points is None else DetectorConfig(learning_points)
    options = DetectOptions(sensitivity, config)
    try:
        forecaster, title = _forecaster(settings, model)
        items = read_series(data, time_col, value_col, id_col)
        scored = score_all(items, options, forecaster)
    except (TswatchError, DataValidationError) as error:
        fail(getattr(error, "detail", str(error)))
    frame = pd.concat([detections_frame(series) for series in scored], ignore_index=True)
    frame.to_csv(out, index=False)
    anomalies = int(frame["is_anomaly"].sum())
    console.print(
        f"{title}: {anomalies} anomalies in {len(frame)} points (sensitivity {sensitivity}, "
        f"learning_points {options.learning_points}); scores written to {out}",
        soft_wrap=True,
    )
    if plot is not None:
        plot_detections(frame, title, plot)
        console.print(f"plot written to {plot}", soft_wrap=True)


def _forecaster(settings: Settings, model: str | None) -> tuple[Forecaster | None, str]:
    """The registered model's forecaster and a title, or (None, "self-learning") without `--model`."""
    if model is None:
        return None, "self-learning"
    name, version, alias = parse_reference(model)
    registry = open_registry(settings)
    loaded = registry.load(registry.resolve(name, version=version, alias=alias))
    return loaded.forecaster, f"{name} v{loaded.version}"


def register(cli: typer.Typer) -> None:
    cli.command()(detect)
