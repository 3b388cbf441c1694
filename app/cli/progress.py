"""Training progress on the terminal: a rich progress bar (epoch, batch losses, validation loss, best epoch, ETA)
on a terminal; plain lines elsewhere (a pipe, a file, `docker logs`), where a live bar would leave cut fragments:
one line per epoch and a progress line every `PLAIN_INTERVAL_SECONDS` while an epoch runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from app.training.trainer import EpochRecord, TrainingProgress

PLAIN_INTERVAL_SECONDS: Final = 10.0


def training_progress(console: Console, label: str) -> TrainingProgress:
    """The rich bar when `console` writes to a terminal, else plain progress lines."""
    if console.is_terminal:
        return RichTrainingProgress(console, label)
    return PlainTrainingProgress(console, label)


def _epoch_line(record: EpochRecord) -> str:
    marker = " *" if record.improved else ""
    return (
        f"epoch {record.epoch:>3}  train {record.train_loss:.4f}  val {record.val_loss:.4f}{marker}"
        f"  ({record.seconds:.1f}s)"
    )


class PlainLines:
    """Whole labelled lines only, with no source-file suffix or cursor movement: readable in a log file.
    `_due` says whether a throttled progress line may be printed (every `interval` seconds)."""

    def __init__(
        self,
        console: Console,
        label: str,
        interval: float = PLAIN_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._console, self._label, self._interval, self._clock = console, label, interval, clock
        self._last_line = 0.0

    def _line(self, text: str) -> None:
        self._console.print(f"{self._label}: {text}", markup=False, highlight=False, soft_wrap=True)
        self._last_line = self._clock()

    def _due(self) -> bool:
        return self._clock() - self._last_line >= self._interval


class PlainTrainingProgress(PlainLines):
    _epochs = _batches = _done = 0  # set by `start`, counted by `batch`

    def start(self, epochs: int, batches_per_epoch: int) -> None:
        self._epochs, self._batches = epochs, batches_per_epoch
        self._line(f"training up to {epochs} epochs of {batches_per_epoch} batches")

    def batch(self, epoch: int, loss: float) -> None:
        self._done += 1
        if self._due():
            total = self._epochs * self._batches
            self._line(f"epoch {epoch}/{self._epochs}  batch {self._done}/{total}  train {loss:.4f}")

    def epoch(self, record: EpochRecord) -> None:
        self._done = record.epoch * self._batches  # epochs count from 1
        self._line(_epoch_line(record))

    def finish(self) -> None:
        self._line("training done")


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
        self._progress.console.log(_epoch_line(record), highlight=False)

    def finish(self) -> None:
        task = self._progress.tasks[0]
        if task.total is not None:
            self._progress.update(self._task, completed=task.total)
        self._progress.stop()
