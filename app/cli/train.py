"""`tswatch train`: fit a forecaster on a CSV/Parquet file and register it as a new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.table import Table

from app.cli.output import console, error_console, fail, print_json
from app.cli.plots import REPORT_FILE, plot_training_report
from app.cli.progress import training_progress
from app.errors import TswatchError
from app.registry.factory import open_registry
from app.registry.manifest import EvaluationMetrics
from app.settings import Settings
from app.training.config import TrainingConfig
from app.training.data.errors import DataValidationError
from app.training.data.parsing import DEFAULT_TIME_COL, DEFAULT_VALUE_COL
from app.training.pipeline import TrainingResult, train_file

SCALED_COLUMNS = {"mase_seasonal": "MASE (seasonal)", "mase_random_walk": "MASE (random walk)"}


def _scaled(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _metric_notes(metrics: EvaluationMetrics) -> str | None:
    """Why a MASE is n/a or partial, once per metric (every forecaster shares its scale)."""
    lines = []
    for metric, column in SCALED_COLUMNS.items():
        notes = [
            values.notes[metric] for values in metrics.by_forecaster().values() if metric in values.notes
        ]
        if notes:
            lines.append(f"{column}: {notes[0]}")
    return "\n".join(lines) or None


def metrics_table(metrics: EvaluationMetrics) -> Table:
    table = Table(
        title=f"Test split ({metrics.test_windows} windows, season {metrics.season})",
        caption=_metric_notes(metrics),
        caption_justify="left",
    )
    for column in ("forecaster", "MAE", "RMSE", *SCALED_COLUMNS.values()):
        table.add_column(column, justify="right" if column != "forecaster" else "left")
    for name, values in metrics.by_forecaster().items():
        table.add_row(
            name.replace("_", " "),
            f"{values.mae:.4g}",
            f"{values.rmse:.4g}",
            _scaled(values.mase_seasonal),
            _scaled(values.mase_random_walk),
        )
    return table


def coverage_table(metrics: EvaluationMetrics) -> Table:
    table = Table(title="Prediction intervals (test)")
    for column in ("level", "coverage", "mean width"):
        table.add_column(column, justify="right")
    for level, values in metrics.intervals.items():
        table.add_row(f"{float(level):g}%", f"{values.coverage:.1%}", f"{values.mean_width:.4g}")
    return table


def write_report_plot(result: TrainingResult) -> Path | None:
    """The report PNG next to the version's artifacts; a plotting failure never fails the (registered) run."""
    manifest = result.manifest.model_copy(
        update={"name": result.version.name, "version": result.version.version}
    )
    try:
        return plot_training_report(manifest, result.version.path / REPORT_FILE)
    except (OSError, ValueError) as error:
        error_console.print(f"[yellow]warning:[/] could not write the report plot: {error}", highlight=False)
        return None


def report(result: TrainingResult, as_json: bool, plot_path: Path | None = None) -> None:
    manifest = result.manifest
    if as_json:
        print_json(
            {
                "name": result.version.name,
                "version": result.version.version,
                "metrics": manifest.metrics.model_dump(mode="json"),
                "report_plot": None if plot_path is None else str(plot_path),
            }
        )
        return
    console.print(
        f"Registered [bold]{result.version.name}[/] version [bold]{result.version.version}[/] "
        f"(best epoch {manifest.training.best_epoch}, {manifest.training.seconds:.1f}s) "
        f"at {result.version.path}"
    )
    console.print(metrics_table(manifest.metrics))
    console.print(coverage_table(manifest.metrics))
    if plot_path is not None:
        console.print(f"report plot written to {plot_path}", soft_wrap=True)


def train(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file.", exists=True, dir_okay=False)],
    name: Annotated[str, typer.Option(help="Model name to register the new version under.")],
    time_col: Annotated[str, typer.Option(help="Timestamp column.")] = DEFAULT_TIME_COL,
    value_col: Annotated[str, typer.Option(help="Value column.")] = DEFAULT_VALUE_COL,
    id_col: Annotated[
        str | None, typer.Option(help="Series id column (long format: one global model).")
    ] = None,
    window: Annotated[int, typer.Option(help="Past points the network reads.")] = TrainingConfig.window,
    horizon: Annotated[int, typer.Option(help="Future points forecast at once.")] = TrainingConfig.horizon,
    cell: Annotated[str, typer.Option(help="Recurrent cell: gru, lstm or rnn.")] = TrainingConfig.cell,
    hidden: Annotated[int, typer.Option(help="Hidden units per layer.")] = TrainingConfig.hidden,
    layers: Annotated[int, typer.Option(help="Stacked recurrent layers.")] = TrainingConfig.layers,
    dropout: Annotated[float, typer.Option(help="Dropout between layers.")] = TrainingConfig.dropout,
    patch_len: Annotated[
        int, typer.Option(help="Points per recurrent step (1 = point by point).")
    ] = TrainingConfig.patch_len,
    normalisation: Annotated[
        str, typer.Option(help="instance, last or global.")
    ] = TrainingConfig.normalisation,
    calendar: Annotated[
        bool | None,
        typer.Option("--calendar/--no-calendar", help="Calendar inputs (default: sub-daily data)."),
    ] = TrainingConfig.calendar,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = TrainingConfig.epochs,
    batch_size: Annotated[int, typer.Option(help="Windows per batch.")] = TrainingConfig.batch_size,
    lr: Annotated[float, typer.Option(help="Learning rate (AdamW).")] = TrainingConfig.lr,
    patience: Annotated[
        int, typer.Option(help="Epochs without validation gain before stopping.")
    ] = TrainingConfig.patience,
    seed: Annotated[int, typer.Option(help="Random seed (runs are deterministic).")] = TrainingConfig.seed,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train a recurrent forecaster and register it as a new version."""
    settings = Settings()
    torch.set_num_threads(settings.torch_threads)
    try:
        config = TrainingConfig(
            window=window, horizon=horizon, cell=cell, hidden=hidden, layers=layers, dropout=dropout,
            patch_len=patch_len, normalisation=normalisation, calendar=calendar, epochs=epochs,
            batch_size=batch_size, lr=lr, patience=patience, seed=seed,
        )  # fmt: skip
        registry = open_registry(settings)
        progress = None if as_json else training_progress(console, name)
        result = train_file(
            data, name, registry, config, time_col=time_col, value_col=value_col, id_col=id_col,
            alias=alias, progress=progress,
        )  # fmt: skip
    except KeyboardInterrupt:
        fail("training interrupted: nothing was registered", code=130)
    except (DataValidationError, TswatchError, ValueError) as error:
        fail(str(error))
    report(result, as_json, write_report_plot(result))


def register(cli: typer.Typer) -> None:
    cli.command()(train)
