"""Fit tasks: one configuration fitted on one dataset, without touching the registry.

Per-series training (`per_series.py`) and the configuration search (`search.py`) describe their work as a
list of `FitTask`s and hand it to a runner: `LocalRunner` (here, sequential) or `RayRunner`
(`ray_runner.py`, tasks in parallel on a cluster). A task's answer, `FitOutcome`, is plain data (safetensors
bytes and the manifest) so that it crosses process and machine boundaries; the driver alone publishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from app.registry.manifest import Manifest
from app.training.config import Choice, TrainingConfig
from app.training.data.prepared import PreparedData
from app.training.pipeline import PendingVersion, build_version
from app.training.trainer import TrainingHistory


@dataclass(frozen=True)
class FitTask:
    name: str  # the model name the outcome is registered under
    data: PreparedData
    config: TrainingConfig
    choices: list[Choice] = field(default_factory=list)
    source: str = "<data>"
    torch_threads: int = 1


@dataclass(frozen=True)
class FitOutcome:
    name: str
    weights: bytes  # safetensors
    manifest: Manifest
    history: TrainingHistory
    validation_mae: float

    def pending(self) -> PendingVersion:
        return PendingVersion(
            self.name, load_safetensors(self.weights), self.manifest, self.history, self.validation_mae
        )


def run_fit_task(task: FitTask) -> FitOutcome:
    """What a worker runs (a Ray task imports this by name): fit, evaluate, describe; never publish."""
    torch.set_num_threads(task.torch_threads)
    pending = build_version(task.data, task.name, task.config, task.choices, source=task.source)
    weights = save_safetensors(
        {key: value.detach().contiguous().cpu() for key, value in pending.tensors.items()}
    )
    return FitOutcome(task.name, weights, pending.manifest, pending.history, pending.validation_mae)


class TaskProgress(Protocol):
    """One bar over the tasks, advanced as each one finishes (in whatever order they finish)."""

    def start(self, total: int) -> None: ...
    def advance(self, name: str) -> None: ...
    def finish(self) -> None: ...


class SilentTaskProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, name: str) -> None:
        pass

    def finish(self) -> None:
        pass


class TaskRunner(Protocol):
    def run(self, tasks: Sequence[FitTask], progress: TaskProgress) -> list[FitOutcome]:
        """Every task's outcome, in task order; raises the first task error (and runs nothing further)."""
        ...


class LocalRunner:
    """The tasks one after another in this process."""

    def run(self, tasks: Sequence[FitTask], progress: TaskProgress) -> list[FitOutcome]:
        progress.start(len(tasks))
        outcomes = []
        try:
            for task in tasks:
                outcomes.append(run_fit_task(task))
                progress.advance(task.name)
        finally:
            progress.finish()
        return outcomes
