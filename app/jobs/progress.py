"""A worker's `TrainingProgress`: phase, epoch of epochs and losses, written to the job's row.

Every write is conditional on the job still running; when it is not (cancelled, or failed by a server),
`JobStoppedError` ends the training at once. Batch-level reports are written at most every `min_interval`
seconds, so a cancel is noticed within about that time even in a long epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from app.jobs.errors import JobStoppedError
from app.training.trainer import EpochRecord

Report = Callable[[Mapping[str, Any]], bool]  # write the progress; False: the job is no longer running

DEFAULT_MIN_INTERVAL = 2.0


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class JobProgress:
    def __init__(self, report: Report, min_interval: float = DEFAULT_MIN_INTERVAL) -> None:
        self._report = report
        self._min_interval = min_interval
        self._last_write = 0.0
        self.state: dict[str, Any] = {"phase": "starting"}

    def phase(self, name: str) -> None:
        """Enter a phase outside the epochs (loading data, evaluating, registering)."""
        self._write({**self.state, "phase": name}, force=True)

    def start(self, epochs: int, batches_per_epoch: int) -> None:
        self._write(
            {"phase": "training", "epoch": 0, "epochs": epochs, "batches_per_epoch": batches_per_epoch},
            force=True,
        )

    def batch(self, epoch: int, loss: float) -> None:
        batch = int(self.state.get("batch", 0)) + 1 if self.state.get("epoch_running") == epoch else 1
        self._write({**self.state, "epoch_running": epoch, "batch": batch, "batch_loss": _finite(loss)})

    def epoch(self, record: EpochRecord) -> None:
        state = {key: value for key, value in self.state.items() if key not in ("batch", "batch_loss")}
        best = state.get("best_val_loss")
        improved = record.improved or best is None
        state.update(
            epoch=record.epoch,
            epoch_running=None,
            train_loss=_finite(record.train_loss),
            val_loss=_finite(record.val_loss),
            best_val_loss=_finite(record.val_loss) if improved else best,
        )
        self._write(state, force=True)

    def finish(self) -> None:
        self._write({**self.state, "phase": "evaluating", "epoch_running": None}, force=True)

    def _write(self, state: dict[str, Any], force: bool = False) -> None:
        self.state = state
        now = time.monotonic()
        if not force and now - self._last_write < self._min_interval:
            return
        self._last_write = now
        if not self._report({key: value for key, value in state.items() if value is not None}):
            raise JobStoppedError("the job is no longer running")
