"""`tswatch evaluate`: NAB score of a folder of detector results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from app.cli.output import console, fail
from app.evaluation.nab import CorpusReport, evaluate_folders


def register(cli: typer.Typer) -> None:
    cli.command("evaluate")(evaluate)


def evaluate(
    data: Annotated[Path, typer.Option("--data", help="NAB-layout data folder: DIR/<category>/<file>.csv.")],
    labels: Annotated[Path, typer.Option("--labels", help="Anomaly windows JSON (combined_windows.json).")],
    scores: Annotated[
        Path,
        typer.Option(
            "--scores",
            help="Results folder: DIR/<category>/<file>.csv with timestamp,anomaly_score, or `tswatch detect` "
            "output as is (its score column; unscored rows count as 0).",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead of tables.")] = False,
) -> None:
    """Score detector results with the NAB v1.1 scoring (three cost profiles) and point-adjusted P/R/F1."""
    try:
        report = evaluate_folders(data, labels, scores)
    except ValueError as error:
        fail(escape(str(error)))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)


def _print_report(report: CorpusReport) -> None:
    profiles = Table(title=f"NAB scores ({report.n_files} files, {report.n_windows} windows)")
    for column in ("Profile", "Score", "Raw score", "Threshold"):
        profiles.add_column(column, justify="left" if column == "Profile" else "right")
    for name, result in report.profiles.items():
        profiles.add_row(
            name, f"{result.normalized_score:.2f}", f"{result.raw_score:.4f}", f"{result.threshold:.6g}"
        )
    console.print(profiles)
    pa = report.point_adjusted
    adjusted = Table(title="Point-adjusted metrics (standard threshold)")
    for column in ("Threshold", "Precision", "Recall", "F1"):
        adjusted.add_column(column, justify="right")
    adjusted.add_row(f"{pa.threshold:.6g}", f"{pa.precision:.4f}", f"{pa.recall:.4f}", f"{pa.f1:.4f}")
    console.print(adjusted)
