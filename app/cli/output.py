"""Shared terminal output for the CLI: one console, JSON printing, and errors that end the command."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console()
error_console = Console(stderr=True)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, allow_nan=False))


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `message` (rich markup) as one unwrapped line on stderr and end the command with `code`."""
    error_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
