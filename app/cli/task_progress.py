"""One progress bar over many fits (per-series models, search trials), local or on Ray: a rich bar on a
terminal, plain lines elsewhere (every `PLAIN_INTERVAL_SECONDS` and at the end)."""

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

from app.cli.progress import PlainLines
from app.training.fit_tasks import TaskProgress


def task_progress(console: Console, label: str) -> TaskProgress:
    if console.is_terminal:
        return RichTaskProgress(console, label)
    return PlainTaskProgress(console, label)


class PlainTaskProgress(PlainLines):
    _total = _done = 0  # set by `start`, counted by `advance`

    def start(self, total: int) -> None:
        self._total = total
        self._line(f"fitting {total} model(s)")

    def advance(self, name: str) -> None:
        self._done += 1
        if self._due():
            self._line(f"{self._done}/{self._total} fitted (last: {name})")

    def finish(self) -> None:
        self._line(f"{self._done}/{self._total} fitted")


class RichTaskProgress:
    def __init__(self, console: Console, label: str) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = self._progress.add_task(label, total=None, last="")

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)
        self._progress.start()

    def advance(self, name: str) -> None:
        self._progress.update(self._task, advance=1, last=name)

    def finish(self) -> None:
        self._progress.stop()
