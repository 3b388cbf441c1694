"""The `tswatch` console script: one Typer app, one module per subcommand group."""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = (
    "app.cli.train",
    "app.cli.backtest",
    "app.cli.models",
    "app.cli.serve",
    "app.cli.keys",
    "app.cli.evaluate",
    "app.cli.detect",
    "app.cli.hooks",
    "app.cli.db",
)

cli = typer.Typer(
    name="tswatch",
    help="Forecasting and anomaly detection with recurrent networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@cli.callback()
def root() -> None:
    """Forecasting and anomaly detection with recurrent networks."""


def _register_commands() -> None:
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(cli)


_register_commands()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
