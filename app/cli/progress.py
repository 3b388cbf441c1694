"""A rich progress bar for training: epoch, batch losses, validation loss, best epoch and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from app.training.trainer import EpochRecord


class RichTrainingProgress:
    def __init__(self, console: Console, label: str) -> None:
        self._label = label
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task(label, total=None, losses="")
        self._epochs = 0
        self._last_val = ""

    def start(self, epochs: int, batches_per_epoch: int) -> None:
        self._epochs = epochs
        self._progress.update(
            self._task, total=epochs * batches_per_epoch, description=f"{self._label} epoch 1/{epochs}"
        )
        self._progress.start()

    def batch(self, epoch: int, loss: float) -> None:
        self._progress.update(self._task, advance=1, losses=f"train {loss:.4f}{self._last_val}")

    def epoch(self, record: EpochRecord) -> None:
        marker = " *" if record.improved else ""
        self._last_val = f" val {record.val_loss:.4f}{marker}"
        description = f"{self._label} epoch {min(record.epoch + 1, self._epochs)}/{self._epochs}"
        self._progress.update(self._task, description=description)
        self._progress.console.log(
            f"epoch {record.epoch:>3}  train {record.train_loss:.4f}  val {record.val_loss:.4f}{marker}"
            f"  ({record.seconds:.1f}s)",
            highlight=False,
        )

    def finish(self) -> None:
        task = self._progress.tasks[0]
        if task.total is not None:
            self._progress.update(self._task, completed=task.total)
        self._progress.stop()
