"""The configuration search (`tswatch train --search N`): N fits around the data-driven defaults.

Trial 0 is `choose_config`'s configuration; the others vary the fields the user did not give over a small
space around it: the window (×0.5, ×1, ×2, kept a multiple of the patch), the patch length (×0.5, ×1, ×2,
dividing the window), the hidden size (64, 128) and the learning rate (×1, ×3). Trials are drawn without
repetition in a seeded order, so a search is reproducible. Each trial is scored on the validation split
(MAE of the median forecast; the test split is never looked at), the best trial's fitted model is the one
registered (no refit), and every trial's configuration and score go into the manifest
(`training.search`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from app.registry.manifest import SearchTrial
from app.registry.store import Registry, validate_alias, validate_model_name
from app.training.config import Choice, ChoiceValue, TrainingConfig
from app.training.data.errors import DataValidationError
from app.training.data.prepared import PreparedData
from app.training.defaults import choose_config
from app.training.fit_tasks import FitOutcome, FitTask, TaskProgress, TaskRunner
from app.training.fitting import split_bounds
from app.training.pipeline import PendingVersion, TrainingResult, publish_version

SEARCHED_FIELDS = ("window", "patch_len", "hidden", "lr")
WINDOW_FACTORS = (1.0, 0.5, 2.0)
PATCH_FACTORS = (1.0, 0.5, 2.0)
HIDDEN_SIZES = (64, 128)
LR_FACTORS = (1.0, 3.0)
MAX_TOKENS = 64  # window / patch_len: recurrent steps per window


def _window_options(base: TrainingConfig, fixed: set[str]) -> list[int]:
    if "window" in fixed:
        return [base.window]
    return sorted({max(2, round(base.window * factor)) for factor in WINDOW_FACTORS})


def _patch_options(base: TrainingConfig, window: int, fixed: set[str]) -> list[int]:
    if "patch_len" in fixed:
        return [base.patch_len] if window % base.patch_len == 0 else []
    options = {max(1, round(base.patch_len * factor)) for factor in PATCH_FACTORS}
    return sorted(p for p in options if window % p == 0 and window // p <= MAX_TOKENS)


def _valid(data: PreparedData, fields: dict[str, object]) -> TrainingConfig | None:
    try:
        config = TrainingConfig(**fields)  # type: ignore[arg-type]  # values from a valid config
        split_bounds(data, config)
    except (ValueError, DataValidationError):
        return None
    return config


def candidate_configs(data: PreparedData, base: TrainingConfig, fixed: set[str]) -> list[TrainingConfig]:
    """Every valid configuration of the space around `base` (fields in `fixed` stay as they are)."""
    hidden = [base.hidden] if "hidden" in fixed else sorted({base.hidden, *HIDDEN_SIZES})
    rates = [base.lr] if "lr" in fixed else sorted({base.lr * factor for factor in LR_FACTORS})
    found = []
    for scaled in _window_options(base, fixed):
        for patch in _patch_options(base, scaled, fixed) or [base.patch_len]:
            window = scaled if scaled % patch == 0 else max(2 * patch, patch * round(scaled / patch))
            for size in hidden:
                for lr in rates:
                    fields = {
                        **base.to_dict(),
                        "window": window,
                        "patch_len": patch,
                        "hidden": size,
                        "lr": lr,
                    }
                    config = _valid(data, fields)
                    if config is not None and config not in found:
                        found.append(config)
    return found


def search_configs(
    data: PreparedData, base: TrainingConfig, fixed: set[str], trials: int
) -> list[TrainingConfig]:
    """`base` first, then up to `trials - 1` other candidates in an order seeded by `base.seed`."""
    if trials < 1:
        raise ValueError(f"--search needs at least 1 trial, not {trials}")
    others = [config for config in candidate_configs(data, base, fixed) if config != base]
    order = np.random.default_rng(base.seed).permutation(len(others))
    return [base, *(others[int(i)] for i in order[: trials - 1])]


def changes(base: TrainingConfig, config: TrainingConfig) -> dict[str, ChoiceValue]:
    before, after = base.to_dict(), config.to_dict()
    return {name: after[name] for name in SEARCHED_FIELDS if after[name] != before[name]}  # type: ignore[misc]


def _choices(base_choices: list[Choice], changed: Mapping[str, ChoiceValue], reason: str) -> list[Choice]:
    kept = [choice for choice in base_choices if choice.field not in changed]
    return kept + [Choice(name, value, reason, "search") for name, value in changed.items()]


def search_tasks(
    data: PreparedData,
    name: str,
    overrides: Mapping[str, object],
    trials: int,
    *,
    source: str = "<data>",
    torch_threads: int = 1,
) -> list[FitTask]:
    base, base_choices = choose_config(data, overrides)
    fixed = {key for key, value in overrides.items() if value is not None}
    configs = search_configs(data, base, fixed, trials)
    return [
        FitTask(
            name,
            data,
            config,
            _choices(base_choices, changes(base, config), f"search trial {number}"),
            source,
            torch_threads,
        )
        for number, config in enumerate(configs)
    ]


def _trials(tasks: list[FitTask], outcomes: list[FitOutcome], best: int) -> list[SearchTrial]:
    base = tasks[0].config
    return [
        SearchTrial(
            number=number,
            changes=changes(base, task.config),
            config=task.config,
            validation_mae=outcome.validation_mae,
            best_val_loss=outcome.history.best_val_loss,
            best_epoch=outcome.history.best_epoch,
            seconds=round(outcome.history.seconds, 3),
            chosen=number == best,
        )
        for number, (task, outcome) in enumerate(zip(tasks, outcomes, strict=True))
    ]


def best_version(tasks: list[FitTask], outcomes: list[FitOutcome]) -> PendingVersion:
    """The trial with the lowest validation MAE (the earliest on a tie), its manifest carrying every trial."""
    scores = [outcome.validation_mae for outcome in outcomes]
    best = int(np.argmin(scores))
    chosen = outcomes[best].pending()
    reason = f"search: lowest validation MAE of {len(tasks)} trials (trial {best})"
    choices = _choices(tasks[0].choices, changes(tasks[0].config, tasks[best].config), reason)
    training = chosen.manifest.training.model_copy(
        update={"search": _trials(tasks, outcomes, best), "choices": choices}
    )
    manifest = chosen.manifest.model_copy(update={"training": training})
    return dataclasses.replace(chosen, manifest=manifest)


def train_with_search(
    data: PreparedData,
    name: str,
    registry: Registry,
    runner: TaskRunner,
    progress: TaskProgress,
    trials: int,
    *,
    overrides: Mapping[str, object] | None = None,
    alias: str | None = None,
    force: bool = False,
    source: str = "<data>",
    torch_threads: int = 1,
) -> TrainingResult:
    """Fit the trials on `runner`, then register the best one."""
    validate_model_name(name)
    if alias is not None:
        validate_alias(alias)
    tasks = search_tasks(data, name, overrides or {}, trials, source=source, torch_threads=torch_threads)
    outcomes = runner.run(tasks, progress)
    return publish_version(
        registry, best_version(tasks, outcomes), alias=alias, force=force, notices=tuple(data.notices)
    )
