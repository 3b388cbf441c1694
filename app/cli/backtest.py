"""`tswatch backtest`: rolling-origin evaluation of a registered model or of a training configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.table import Table

from app.cli.backtest_plot import plot_backtest
from app.cli.models import parse_reference
from app.cli.output import console, error_console, fail, print_json
from app.cli.progress import training_progress
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
from app.settings import Settings
from app.training.backtest import (
    DEFAULT_ORIGINS,
    BacktestResult,
    FitProgress,
    OriginPlan,
    backtest_config,
    backtest_model,
    resolve_config,
)
from app.training.backtest_scores import level_key, summarise
from app.training.data.errors import DataValidationError
from app.training.data.parsing import DEFAULT_TIME_COL, DEFAULT_VALUE_COL
from app.training.data.prepared import PreparedData, load_training_data
from app.training.data.reading import ReadOptions

MIN_POINTS = 2  # the data's own checks; the backtest checks the points around its origins itself


def _model_reference(reference: str) -> tuple[str, int | None, str | None]:
    """`NAME`, `NAME:3`, `NAME@3` or `NAME@staging` -> (name, version, alias)."""
    name, colon, version = reference.partition(":")
    if colon:
        if not version.isdigit():
            raise DataValidationError(f"--model {reference!r}: the version after ':' must be a number")
        return name, int(version), None
    return parse_reference(reference)


def _run_model(data: PreparedData, reference: str, plan: dict[str, int | None]) -> BacktestResult:
    name, version, alias = _model_reference(reference)
    registry = open_registry(Settings())
    try:
        loaded = registry.load(registry.resolve(name, version=version, alias=alias))
    finally:
        registry.database.dispose()
    horizon = plan["horizon"] or loaded.forecaster.spec.horizon
    origin_plan = OriginPlan(
        horizon=horizon, origins=plan["origins"] or DEFAULT_ORIGINS, stride=plan["stride"]
    )
    return backtest_model(data, loaded.forecaster, origin_plan, f"{loaded.name} v{loaded.version}")


def _fit_progress(quiet: bool) -> FitProgress | None:
    if quiet:
        return None
    return lambda number, total: training_progress(console, f"backtest fit {number}/{total}")


def _run_config(
    data: PreparedData,
    overrides: dict[str, Any],
    plan: dict[str, int | None],
    refit_every: int | None,
    quiet: bool,
) -> BacktestResult:
    config, origin_plan, choices = resolve_config(
        data, overrides, origins=plan["origins"] or DEFAULT_ORIGINS, stride=plan["stride"]
    )
    return backtest_config(data, config, origin_plan, refit_every, _fit_progress(quiet), choices)


# ------------------------------------------------------------------------------------------------ output
SUMMARY_ROWS = 6  # a longer horizon is shown in buckets of steps (every step is in --json)
SHOWN_FIELDS = (
    "window",
    "horizon",
    "patch_len",
    "cell",
    "hidden",
    "layers",
    "normalisation",
    "baseline",
    "epochs",
)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _caption(result: BacktestResult) -> str | None:
    notes = [result.scores.note] if result.scores.note else []
    if result.season == 1:
        notes.append("no season detected before the first origin: seasonal naive is the random walk")
    return "\n".join(notes) or None


def scores_table(result: BacktestResult) -> Table:
    scores = result.scores
    table = Table(
        title=(
            f"Backtest of {result.subject}: {result.origins} origins {result.stride} apart, horizon "
            f"{result.horizon}, {scores.windows} forecasts, season {result.season}"
        ),
        caption=_caption(result),
        caption_justify="left",
    )
    levels = [level_key(level) for level in result.levels]
    for column in ("step", "forecaster", "MAE", "RMSE", "MASE", *(f"{level}% cov." for level in levels)):
        table.add_column(column, justify="left" if column == "forecaster" else "right")
    groups = [*summarise(scores, SUMMARY_ROWS), scores.overall]
    for index, step in enumerate(groups):
        label = "all" if index == len(groups) - 1 else step.label
        for position, (name, values) in enumerate(step.by_forecaster().items()):
            coverage = [f"{step.coverage[level]:.1%}" if position == 0 else "" for level in levels]
            table.add_row(
                label if position == 0 else "",
                name.replace("_", " "),
                _number(values.mae),
                _number(values.rmse),
                _number(values.mase),
                *coverage,
                end_section=position == 2,
            )
    return table


def default_plot_path(data: Path) -> Path:
    """Next to the data when that folder is writable, else in the working directory."""
    name = f"{data.stem}.backtest.png"
    return data.parent / name if os.access(data.parent, os.W_OK) else Path.cwd() / name


def _write_plot(result: BacktestResult, path: Path) -> Path | None:
    try:
        return plot_backtest(result, path)
    except (OSError, ValueError) as error:
        error_console.print(
            f"[yellow]warning:[/] could not write the backtest plot: {error}", highlight=False
        )
        return None


def report(result: BacktestResult, as_json: bool, plot_path: Path | None) -> None:
    if as_json:
        print_json({**result.to_dict(), "plot": None if plot_path is None else str(plot_path)})
        return
    if result.config is not None:
        config = result.config
        shown = ", ".join(f"{name} {config[name]}" for name in SHOWN_FIELDS if name in config)
        console.print(f"{result.fits} fit(s) of the configuration: {shown}", soft_wrap=True)
    console.print(scores_table(result))
    if plot_path is not None:
        console.print(f"backtest plot written to {plot_path}", soft_wrap=True)


# ------------------------------------------------------------------------------------------------ command
def backtest(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file.", exists=True, dir_okay=False)],
    model: Annotated[
        str | None,
        typer.Option(help="Registered model NAME[:VERSION|@ALIAS]; without it, a training configuration."),
    ] = None,
    origins: Annotated[
        int | None, typer.Option(help=f"Forecast origins (default {DEFAULT_ORIGINS}).")
    ] = None,
    stride: Annotated[int | None, typer.Option(help="Points between origins (default: the horizon).")] = None,
    horizon: Annotated[
        int | None, typer.Option(help="Steps scored (default: the model's or the configuration's horizon).")
    ] = None,
    refit_every: Annotated[
        int | None, typer.Option(help="Configuration only: refit every K origins (default: fit once).")
    ] = None,
    time_col: TimeColOption = DEFAULT_TIME_COL,
    value_col: ValueColOption = DEFAULT_VALUE_COL,
    id_col: IdColOption = None,
    sep: SepOption = None,
    decimal: DecimalOption = ".",
    dayfirst: DayfirstOption = None,
    window: WindowOption = None,
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
    plot: Annotated[
        Path | None, typer.Option(help="PNG to write (default: DATA's name + .backtest.png next to it).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every per-step figure as JSON.")] = False,
) -> None:
    """Rolling-origin evaluation: MAE/RMSE/MASE/coverage per horizon step next to seasonal naive and random walk."""
    torch.set_num_threads(Settings().torch_threads)
    overrides = given_options(
        window=window, cell=cell, hidden=hidden, layers=layers, dropout=dropout, patch_len=patch_len,
        normalisation=normalisation, baseline=baseline, calendar=calendar, epochs=epochs,
        batch_size=batch_size, lr=lr, patience=patience, seed=seed,
    )  # fmt: skip
    plan = {"origins": origins, "stride": stride, "horizon": horizon}
    if model is not None and (overrides or refit_every is not None):
        names = [*overrides, *(["refit_every"] if refit_every is not None else [])]
        given = ", ".join(f"--{name.replace('_', '-')}" for name in names)
        fail(f"{given}: training options apply to a configuration backtest, not to --model")
    try:
        reading = ReadOptions(sep=sep, decimal=decimal, dayfirst=dayfirst)
        prepared = load_training_data(
            data, time_col=time_col, value_col=value_col, id_col=id_col, min_length=MIN_POINTS,
            read_options=reading,
        )  # fmt: skip
        if model is not None:
            result = _run_model(prepared, model, plan)
        else:
            if horizon is not None:
                overrides["horizon"] = horizon
            result = _run_config(prepared, overrides, plan, refit_every, quiet=as_json)
    except KeyboardInterrupt:
        fail("backtest interrupted", code=130)
    except TswatchError as error:
        fail(error.detail)
    except ValueError as error:  # DataValidationError and bad option values
        fail(str(error))
    report(result, as_json, _write_plot(result, plot or default_plot_path(data)))


def register(cli: typer.Typer) -> None:
    cli.command()(backtest)
