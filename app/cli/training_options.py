"""The data and training options `tswatch train` and `tswatch backtest` share, declared once.

Training options default to None, meaning "not given": the data-driven defaults (app.training.defaults) fill
them, and any option the user gives wins.
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.training.config import TrainingConfig

TimeColOption = Annotated[str, typer.Option(help="Timestamp column.")]
ValueColOption = Annotated[str, typer.Option(help="Value column.")]
IdColOption = Annotated[str | None, typer.Option(help="Series id column (long format: one global model).")]
SepOption = Annotated[
    str | None,
    typer.Option(help='CSV column separator, e.g. ";" or tab (default: sniffed from the header).'),
]
DecimalOption = Annotated[str, typer.Option(help='Decimal mark of the numbers: "." or ",".')]
DayfirstOption = Annotated[
    bool | None,
    typer.Option(
        "--dayfirst/--no-dayfirst",
        help="Read dates like 03/04/2024 as 3 April (default: detected where a day > 12 shows it, "
        "else month-first).",
    ),
]
WindowOption = Annotated[
    int | None, typer.Option(help="Past points the network reads (default: from the data).")
]
CellOption = Annotated[str | None, typer.Option(help="Recurrent cell: gru, lstm or rnn.")]
HiddenOption = Annotated[int | None, typer.Option(help="Hidden units per layer (default: from the data).")]
LayersOption = Annotated[int | None, typer.Option(help="Stacked recurrent layers.")]
DropoutOption = Annotated[float | None, typer.Option(help="Dropout between layers.")]
PatchLenOption = Annotated[
    int | None, typer.Option(help="Points per recurrent step (1 = point by point; default: from the data).")
]
NormalisationOption = Annotated[
    str | None, typer.Option(help="instance, last or global (default: from the horizon and season).")
]
BaselineOption = Annotated[
    str | None,
    typer.Option(
        help="Naive forecast the network corrects: none, last or seasonal (default: from validation)."
    ),
]
CalendarOption = Annotated[
    bool | None, typer.Option("--calendar/--no-calendar", help="Calendar inputs (default: sub-daily data).")
]
EpochsOption = Annotated[int | None, typer.Option(help="Maximum epochs (default: from the data size).")]
BatchSizeOption = Annotated[
    int | None, typer.Option(help="Windows per batch.", show_default=str(TrainingConfig.batch_size))
]
LrOption = Annotated[
    float | None, typer.Option(help="Learning rate (AdamW).", show_default=str(TrainingConfig.lr))
]
PatienceOption = Annotated[
    int | None, typer.Option(help="Epochs without validation gain before stopping (default: from the data).")
]
SeedOption = Annotated[
    int | None,
    typer.Option(help="Random seed (runs are deterministic).", show_default=str(TrainingConfig.seed)),
]


def given_options(**options: object) -> dict[str, object]:
    """The training options the user gave (None = not given), as `choose_config` overrides."""
    return {name: value for name, value in options.items() if value is not None}
