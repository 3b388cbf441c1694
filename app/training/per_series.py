"""One model per series (`tswatch train --per-series`): series `S` of model `NAME` registers as `NAME-S`.

Every check runs before any training: each series' model name, its data-driven configuration
(`choose_config` on that series alone) and its splits. The fits run on a `TaskRunner` (sequential here, in
parallel on Ray); publishing starts only once every fit has finished, so an interrupted or failed run
registers nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from app.errors import InvalidInputError
from app.registry.store import NAME_PATTERN, Registry, validate_alias
from app.training.data.prepared import PreparedData, fingerprint
from app.training.defaults import choose_config
from app.training.fit_tasks import FitTask, TaskProgress, TaskRunner
from app.training.fitting import split_bounds
from app.training.pipeline import TrainingResult, publish_version

SHOWN_BAD_IDS = 5


def series_model_names(name: str, data: PreparedData) -> dict[str, str]:
    """Series id -> `NAME-<id>`; refuses the run when any id makes an invalid model name."""
    names = {series.id: f"{name}-{series.id}" for series in data.series}
    bad = [series_id for series_id, model in names.items() if not NAME_PATTERN.fullmatch(model)]
    if bad:
        shown = ", ".join(repr(series_id) for series_id in bad[:SHOWN_BAD_IDS])
        more = f" and {len(bad) - SHOWN_BAD_IDS} more" if len(bad) > SHOWN_BAD_IDS else ""
        raise InvalidInputError(
            f"--per-series registers each series as {name}-<series id>, and {len(bad)} series id(s) make an "
            f"invalid model name: {shown}{more}; model names are 1-64 lowercase letters, digits, '.', '_' or "
            "'-', starting with a letter or digit (rename those series or shorten --name)",
            fields={"name": name},
        )
    return names


def single_series(data: PreparedData, index: int) -> PreparedData:
    """The `index`-th series of `data` as data of its own (its gap report, fingerprint and row count)."""
    series = data.series[index]
    gaps = [gap for gap in data.gaps if gap.series_id == series.id]
    rows = len(series.values) + sum(gap.trimmed_points - gap.missing_points for gap in gaps)
    return dataclasses.replace(
        data, series=[series], gaps=gaps, fingerprint=fingerprint([series]), source_rows=rows
    )


def per_series_tasks(
    data: PreparedData,
    name: str,
    overrides: Mapping[str, object],
    *,
    source: str = "<data>",
    torch_threads: int = 1,
) -> list[FitTask]:
    """One task per series, each configured from its own data; raises before any training on a bad input."""
    names = series_model_names(name, data)
    tasks = []
    for index, series in enumerate(data.series):
        own = single_series(data, index)
        config, choices = choose_config(own, overrides)
        split_bounds(own, config)  # too short for the splits: refused now, not on a worker later
        tasks.append(FitTask(names[series.id], own, config, choices, source, torch_threads))
    return tasks


def train_per_series(
    data: PreparedData,
    name: str,
    registry: Registry,
    runner: TaskRunner,
    progress: TaskProgress,
    *,
    overrides: Mapping[str, object] | None = None,
    alias: str | None = None,
    force: bool = False,
    source: str = "<data>",
    torch_threads: int = 1,
) -> list[TrainingResult]:
    """Fit every series' model on `runner`, then register them all (in series order)."""
    if alias is not None:
        validate_alias(alias)
    tasks = per_series_tasks(data, name, overrides or {}, source=source, torch_threads=torch_threads)
    outcomes = runner.run(tasks, progress)
    notices = tuple(data.notices)
    return [
        publish_version(registry, outcome.pending(), alias=alias, force=force, notices=notices)
        for outcome in outcomes
    ]
