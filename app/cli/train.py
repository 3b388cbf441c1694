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
from app.cli.quality import losses_json, manifest_losses, refusal_message, warn_if_losing
from app.cli.search_table import search_table
from app.cli.train_tables import gaps_table, per_series_table
from app.cli.training_options import (
    BaselineOption,
    BatchSizeOption,
    CalendarOption,
    CellOption,
    DayfirstOption,
    DecimalOption,
    DropoutOption,
    EpochsOption,
    HiddenOption,
    IdColOption,
    LayersOption,
    LrOption,
    NormalisationOption,
    PatchLenOption,
    PatienceOption,
    SeedOption,
    SepOption,
    TimeColOption,
    ValueColOption,
    WindowOption,
    given_options,
)
from app.errors import TswatchError
from app.registry.factory import open_registry
from app.registry.manifest import EvaluationMetrics
from app.settings import Settings
from app.training.config import Choice, TrainingConfig
from app.training.data.errors import DataValidationError
from app.training.data.gaps import DEFAULT_GAP_POLICY
from app.training.data.parsing import DEFAULT_TIME_COL, DEFAULT_VALUE_COL
from app.training.data.reading import ReadOptions
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


def choices_table(choices: list[Choice]) -> Table:
    table = Table(title="Training configuration")
    for column in ("option", "value", "from", "why"):
        table.add_column(column)
    for choice in choices:
        table.add_row(choice.field, str(choice.value), choice.source, choice.reason)
    return table


def print_choices(config: TrainingConfig, choices: list[Choice]) -> None:
    """Every chosen or given option with its reason, before training starts."""
    console.print(choices_table(choices))


def report(result: TrainingResult, as_json: bool, plot_path: Path | None = None) -> None:
    manifest = result.manifest
    losses = manifest_losses(manifest)
    if as_json:
        warn_if_losing(losses, result.version.name, result.version.version)  # on stderr
        print_json(
            {
                "name": result.version.name,
                "version": result.version.version,
                "metrics": manifest.metrics.model_dump(mode="json"),
                "loses_to": losses_json(losses),
                "refused_alias": result.refused_alias,
                "notices": list(result.notices),
                "gaps": manifest.data.model_dump(mode="json")["gaps"],
                "report_plot": None if plot_path is None else str(plot_path),
                "search": manifest.training.model_dump(mode="json").get("search", []),
            }
        )
        return
    console.print(
        f"Registered [bold]{result.version.name}[/] version [bold]{result.version.version}[/] "
        f"(best epoch {manifest.training.best_epoch}, {manifest.training.seconds:.1f}s) "
        f"at {result.version.path}"
    )
    for notice in result.notices:
        console.print(f"[yellow]note:[/] {notice}", highlight=False, soft_wrap=True)
    for table in (
        gaps_table(manifest.data.gaps, DEFAULT_GAP_POLICY),
        per_series_table(manifest.metrics.per_series),
        search_table(manifest.training.search),
    ):
        if table is not None:
            console.print(table)
    console.print(metrics_table(manifest.metrics))
    console.print(coverage_table(manifest.metrics))
    if plot_path is not None:
        console.print(f"report plot written to {plot_path}", soft_wrap=True)
    warn_if_losing(losses, result.version.name, result.version.version)  # last: it must not scroll away


def train(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file.", exists=True, dir_okay=False)],
    name: Annotated[str, typer.Option(help="Model name to register the new version under.")],
    time_col: TimeColOption = DEFAULT_TIME_COL,
    value_col: ValueColOption = DEFAULT_VALUE_COL,
    id_col: IdColOption = None,
    sep: SepOption = None,
    decimal: DecimalOption = ".",
    dayfirst: DayfirstOption = None,
    window: WindowOption = None,
    horizon: Annotated[
        int | None, typer.Option(help="Future points forecast at once (default: from the frequency).")
    ] = None,
    cell: CellOption = None,
    hidden: HiddenOption = None,
    layers: LayersOption = None,
    dropout: DropoutOption = None,
    patch_len: PatchLenOption = None,
    normalisation: NormalisationOption = None,
    baseline: BaselineOption = None,
    calendar: CalendarOption = None,
    epochs: EpochsOption = None,
    batch_size: BatchSizeOption = None,
    lr: LrOption = None,
    patience: PatienceOption = None,
    seed: SeedOption = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Point --alias production even at a version that loses to a naive baseline."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    per_series: Annotated[
        bool,
        typer.Option(
            "--per-series", help="One model per series (needs --id-col), each registered as NAME-<series id>."
        ),
    ] = False,
    search: Annotated[
        int | None,
        typer.Option(
            help="Fit N configurations around the data-driven defaults, register the best on validation."
        ),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run the fits on this Ray cluster (needs the ray extra; env TSWATCH_RAY_ADDRESS).",
        ),
    ] = None,
) -> None:
    """Train a recurrent forecaster and register it as a new version.

    A version whose test MAE is worse than seasonal naive or random walk is flagged; `--alias production`
    then registers it without moving the alias (exit code 1) unless `--force`. Other aliases are not guarded."""
    settings = Settings()
    torch.set_num_threads(settings.torch_threads)
    try:
        overrides = given_options(
            window=window, horizon=horizon, cell=cell, hidden=hidden, layers=layers, dropout=dropout,
            patch_len=patch_len, normalisation=normalisation, baseline=baseline, calendar=calendar,
            epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed,
        )  # fmt: skip
        ray_address = ray or settings.ray_address
        if (
            ray_address or per_series or search is not None
        ):  # app/cli/train_scaled.py; ray only with an address
            from app.cli.train_scaled import DataOptions, ScaledOptions, train_scaled

            scaled = ScaledOptions(ray_address, per_series, search)
            reading = ReadOptions(sep=sep, decimal=decimal, dayfirst=dayfirst)
            train_scaled(
                data, name, settings, scaled, overrides, DataOptions(time_col, value_col, id_col, reading),
                alias=alias, force=force, as_json=as_json,
            )  # fmt: skip
            return
        registry = open_registry(settings)
        progress = None if as_json else training_progress(console, name)
        result = train_file(
            data, name, registry, None, time_col=time_col, value_col=value_col, id_col=id_col,
            alias=alias, force=force, progress=progress, overrides=overrides,
            announce=None if as_json else print_choices,
            read_options=ReadOptions(sep=sep, decimal=decimal, dayfirst=dayfirst),
        )  # fmt: skip
    except KeyboardInterrupt:
        fail("training interrupted: nothing was registered", code=130)
    except (DataValidationError, TswatchError, ValueError) as error:
        fail(str(error))
    report(result, as_json, write_report_plot(result))
    if result.refused_alias is not None:
        losses = manifest_losses(result.manifest)
        fail(refusal_message(name, result.refused_alias, result.version.version, losses), code=1)


def register(cli: typer.Typer) -> None:
    cli.command()(train)
