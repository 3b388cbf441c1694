"""The trials of `tswatch train --search N` as a table: configuration and validation score of each."""

from __future__ import annotations

from rich.table import Table

from app.registry.manifest import SearchTrial


def _note(trial: SearchTrial) -> str:
    return ", ".join(
        label for label, applies in (("defaults", trial.number == 0), ("chosen", trial.chosen)) if applies
    )


def search_table(trials: list[SearchTrial]) -> Table | None:
    """One row per trial: the searched fields, the validation MAE it was ranked by, its loss and time."""
    if not trials:
        return None
    table = Table(title=f"Search: {len(trials)} trials on validation")
    for column in ("trial", "window", "patch", "hidden", "lr", "val MAE", "val loss", "s", "note"):
        table.add_column(column, justify="left" if column in ("trial", "note") else "right")
    for trial in trials:
        config = trial.config
        table.add_row(
            str(trial.number),
            str(config.window),
            str(config.patch_len),
            str(config.hidden),
            f"{config.lr:.2g}",
            f"{trial.validation_mae:.4g}",
            f"{trial.best_val_loss:.4g}",
            f"{trial.seconds:.1f}",
            _note(trial),
        )
    return table
