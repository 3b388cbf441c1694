"""`tswatch db upgrade|current`: the database schema's migrations (`tswatch serve` also upgrades at start)."""

from __future__ import annotations

import typer

from app.cli.output import console
from app.settings import Settings
from app.storage.database import Database
from app.storage.schema import current_revision, head_revision, open_database

db_cli = typer.Typer(help="Migrate the database schema.", no_args_is_help=True)


@db_cli.command("upgrade")
def upgrade() -> None:
    """Apply every pending migration to the configured database (creating it when empty)."""
    database = open_database(Settings())
    try:
        console.print(f"Database at revision {current_revision(database)} (head).", highlight=False)
    finally:
        database.dispose()


@db_cli.command("current")
def current() -> None:
    """Print the database's revision, and the newest one when it is behind."""
    database = Database(Settings().resolved_database_url)
    try:
        revision = current_revision(database)
    finally:
        database.dispose()
    head = head_revision()
    if revision == head:
        typer.echo(f"{revision} (head)")
    else:
        typer.echo(f"{revision or 'none'} (head is {head}; run `tswatch db upgrade`)")


def register(cli: typer.Typer) -> None:
    cli.add_typer(db_cli, name="db")
