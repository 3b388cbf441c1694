"""`tswatch train` with `--per-series`, `--search N` or `--ray ADDRESS`: many fits, one progress bar.

Without a Ray address the fits run one after another in this process; with one they run as tasks on that
cluster (`app.training.ray_runner`, imported only then). Either way this process alone registers the results,
and only once every fit has finished: Ctrl-C or a failed fit registers nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from app.cli.output import console, fail, print_json
from app.cli.quality import losses_json, manifest_losses, refusal_message
from app.cli.task_progress import task_progress
from app.cli.train import report, write_report_plot
from app.errors import TswatchError
from app.registry.factory import open_registry
from app.registry.store import Registry, validate_alias, validate_model_name
from app.settings import Settings
from app.training.data.errors import DataValidationError
from app.training.data.parsing import DEFAULT_TIME_COL, DEFAULT_VALUE_COL
from app.training.data.prepared import PreparedData, load_training_data
from app.training.data.reading import ReadOptions
from app.training.defaults import choose_config
from app.training.fit_tasks import FitTask, LocalRunner, SilentTaskProgress, TaskProgress, TaskRunner
from app.training.per_series import train_per_series
from app.training.pipeline import TrainingResult, min_length, publish_version
from app.training.search import train_with_search

RAY_MISSING = "--ray needs Ray, an optional extra: pip install 'tswatch\\[ray]'"  # \\[: rich markup


@dataclass(frozen=True)
class ScaledOptions:
    ray_address: str | None = None
    per_series: bool = False
    search: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.ray_address) or self.per_series or self.search is not None


@dataclass(frozen=True)
class DataOptions:
    time_col: str = DEFAULT_TIME_COL
    value_col: str = DEFAULT_VALUE_COL
    id_col: str | None = None
    read_options: ReadOptions | None = None


@contextmanager
def open_runner(address: str | None) -> Iterator[TaskRunner]:
    if not address:
        yield LocalRunner()
        return
    try:
        from app.training.ray_runner import RayRunner
    except ModuleNotFoundError as error:
        if error.name == "ray" or (error.name or "").startswith("ray."):
            fail(RAY_MISSING)
        raise
    with RayRunner(address) as runner:
        yield runner


def _check(options: ScaledOptions, data_options: DataOptions) -> None:
    if options.per_series and data_options.id_col is None:
        fail("--per-series needs --id-col (the column naming each series)")
    if options.per_series and options.search is not None:
        fail(
            "--per-series and --search cannot be combined; search on one series first, then pass its settings"
        )
    if options.search is not None and options.search < 1:
        fail(f"--search needs at least 1 trial, not {options.search}")


def _run(
    data: PreparedData,
    name: str,
    registry: Registry,
    runner: TaskRunner,
    progress: TaskProgress,
    options: ScaledOptions,
    overrides: Mapping[str, object],
    alias: str | None,
    force: bool,
    source: str,
    threads: int,
) -> list[TrainingResult]:
    if options.per_series:
        return train_per_series(
            data, name, registry, runner, progress, overrides=overrides, alias=alias, force=force,
            source=source, torch_threads=threads,
        )  # fmt: skip
    if options.search is not None:
        result = train_with_search(
            data, name, registry, runner, progress, options.search, overrides=overrides, alias=alias,
            force=force, source=source, torch_threads=threads,
        )  # fmt: skip
        return [result]
    validate_model_name(name)  # a bad name or alias is refused before any fit
    if alias is not None:
        validate_alias(alias)
    config, choices = choose_config(data, overrides)
    (outcome,) = runner.run([FitTask(name, data, config, choices, source, threads)], progress)
    return [
        publish_version(registry, outcome.pending(), alias=alias, force=force, notices=tuple(data.notices))
    ]


def train_scaled(
    path: Path,
    name: str,
    settings: Settings,
    options: ScaledOptions,
    overrides: Mapping[str, object],
    data_options: DataOptions,
    *,
    alias: str | None = None,
    force: bool = False,
    as_json: bool = False,
) -> None:
    _check(options, data_options)
    try:
        data = load_training_data(
            path, time_col=data_options.time_col, value_col=data_options.value_col, id_col=data_options.id_col,
            min_length=min_length(None, overrides), read_options=data_options.read_options,
        )  # fmt: skip
        registry = open_registry(settings)
        progress: TaskProgress = SilentTaskProgress() if as_json else task_progress(console, name)
        with open_runner(options.ray_address) as runner:
            results = _run(
                data,
                name,
                registry,
                runner,
                progress,
                options,
                overrides,
                alias,
                force,
                path.name,
                settings.torch_threads,
            )
    except KeyboardInterrupt:
        fail("training interrupted: nothing was registered", code=130)
    except (DataValidationError, TswatchError, ValueError) as error:
        fail(str(error))
    if options.per_series:
        _report_many(results, as_json)
    else:
        report(results[0], as_json, write_report_plot(results[0]))
    refused = [result for result in results if result.refused_alias is not None]
    if refused:
        first = refused[0]
        message = refusal_message(
            first.version.name,
            str(first.refused_alias),
            first.version.version,
            manifest_losses(first.manifest),
        )
        more = f" ({len(refused)} models in all)" if len(refused) > 1 else ""
        fail(message + more, code=1)


def _report_many(results: list[TrainingResult], as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "models": [
                    {
                        "name": result.version.name,
                        "version": result.version.version,
                        "metrics": result.manifest.metrics.model_dump(mode="json"),
                        "loses_to": losses_json(manifest_losses(result.manifest)),
                        "refused_alias": result.refused_alias,
                    }
                    for result in results
                ]
            }
        )
        return
    table = Table(title=f"Registered {len(results)} per-series models (test split)")
    for column in ("model", "version", "MAE", "seasonal naive MAE", "random walk MAE", "loses to"):
        table.add_column(column, justify="left" if column in ("model", "loses to") else "right")
    for result in results:
        metrics = result.manifest.metrics
        table.add_row(
            result.version.name,
            str(result.version.version),
            f"{metrics.model.mae:.4g}",
            f"{metrics.baselines.seasonal_naive.mae:.4g}",
            f"{metrics.baselines.random_walk.mae:.4g}",
            ", ".join(loss.baseline for loss in manifest_losses(result.manifest)),
        )
    console.print(table)
