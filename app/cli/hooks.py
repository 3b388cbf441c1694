"""`tswatch hooks secret create|list|revoke`: secrets that senders sign inbound webhooks with.

Several active secrets may coexist (rotation): create the new one, switch the sender, then revoke the old one.
A secret is printed once at creation; it is stored in the registry database because verifying an HMAC needs it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.output import console, fail, print_json
from app.errors import TswatchError
from app.settings import Settings
from app.storage.schema import open_database
from app.timestamps import to_iso_z_seconds
from app.webhooks.inbound import InboundSecretStore, SecretInfo

hooks_cli = typer.Typer(help="Inbound webhooks (POST /v1/hooks/points).", no_args_is_help=True)
secret_cli = typer.Typer(help="Create, list and revoke inbound signing secrets.", no_args_is_help=True)
hooks_cli.add_typer(secret_cli, name="secret")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _store() -> InboundSecretStore:
    return InboundSecretStore(open_database(Settings()))


def secret_payload(info: SecretInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "active": info.active,
        "created_at": to_iso_z_seconds(info.created_at),
        "revoked_at": to_iso_z_seconds(info.revoked_at),
    }


@secret_cli.command("create")
def create_secret(
    name: Annotated[str, typer.Option("--name", help="A label to recognise the secret by.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a signing secret (`whsec_...`) and print it once."""
    info, secret = _store().create(name)
    if as_json:
        print_json({"secret": secret, **secret_payload(info)})
        return
    console.print(f"Created inbound secret [bold]{info.id}[/]{f' ({name})' if name else ''}.")
    console.print("Give it to the sender now; it will not be shown again:", style="yellow")
    typer.echo(secret)


@secret_cli.command("list")
def list_secrets(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked secrets.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List secrets (ids, names, dates; never the secrets themselves)."""
    secrets = _store().list(include_revoked=include_revoked)
    if as_json:
        print_json([secret_payload(info) for info in secrets])
        return
    if not secrets:
        console.print("No inbound secrets. Create one with `tswatch hooks secret create`.")
        return
    table = Table(title="Inbound webhook secrets")
    for column in ("id", "name", "created", "revoked"):
        table.add_column(column)
    for info in secrets:
        payload = secret_payload(info)
        table.add_row(info.id, info.name or "-", payload["created_at"], payload["revoked_at"] or "-")
    console.print(table)


@secret_cli.command("revoke")
def revoke_secret(
    secret_id: Annotated[str, typer.Argument(help="The secret's id (`isec_...`).")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a secret: requests signed with it are refused from the next request on."""
    try:
        info = _store().revoke(secret_id)
    except TswatchError as error:
        fail(error.detail)
    if as_json:
        print_json(secret_payload(info))
    else:
        console.print(f"Revoked inbound secret {info.id}.")


def register(cli: typer.Typer) -> None:
    cli.add_typer(hooks_cli, name="hooks")
