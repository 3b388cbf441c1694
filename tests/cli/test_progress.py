"""Training progress off a terminal: whole plain lines (an epoch line each epoch, a progress line every interval
while an epoch runs), no live bar and no source-file suffixes."""

from __future__ import annotations

import io

from rich.console import Console

from app.cli.progress import PlainTrainingProgress, RichTrainingProgress, training_progress
from app.training.trainer import EpochRecord


def test_a_console_that_is_not_a_terminal_gets_plain_lines() -> None:
    out = io.StringIO()
    console = Console(file=out, width=40)
    assert isinstance(training_progress(console, "demo"), PlainTrainingProgress)
    assert isinstance(
        training_progress(Console(file=io.StringIO(), force_terminal=True), "x"), RichTrainingProgress
    )

    now = [0.0]
    progress = PlainTrainingProgress(console, "a-rather-long-model-name", interval=10.0, clock=lambda: now[0])
    progress.start(epochs=2, batches_per_epoch=3)
    for batch in range(3):
        now[0] += 6.0
        progress.batch(1, 0.5 + batch)
    progress.epoch(EpochRecord(1, 0.25, 0.3, 18.0, True))
    now[0] += 1.0
    progress.batch(2, 0.2)  # within the interval of the epoch line: no line
    progress.finish()

    lines = out.getvalue().splitlines()
    assert lines == [
        "a-rather-long-model-name: training up to 2 epochs of 3 batches",
        "a-rather-long-model-name: epoch 1/2  batch 2/6  train 1.5000",
        "a-rather-long-model-name: epoch   1  train 0.2500  val 0.3000 *  (18.0s)",
        "a-rather-long-model-name: training done",
    ]
