"""`tswatch keys create|list|revoke`: manage API keys. A new key's plaintext is printed once, never stored."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.output import console, error_console, fail, print_json
from app.errors import TswatchError
from app.keys.roles import Role
from app.keys.store import KeyInfo, KeyStore
from app.settings import Settings
from app.storage.schema import open_database
from app.timestamps import to_iso_z_seconds

keys_cli = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _store() -> KeyStore:
    return KeyStore(open_database(Settings()))


def key_payload(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "name": info.name,
        "role": info.role.value,
        "created_at": to_iso_z_seconds(info.created_at),
        "revoked_at": to_iso_z_seconds(info.revoked_at),
        "last_used_at": to_iso_z_seconds(info.last_used_at),
    }


@keys_cli.command("create")
def create_key(
    role: Annotated[Role, typer.Option("--role", help="read < write < admin; each includes the lower ones.")],
    name: Annotated[str, typer.Option("--name", help="A label to recognise the key by.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a key and print it once: it cannot be shown again. The first key closes an open server: from then
    on every request, of every role, needs a key."""
    store = _store()
    opens = Settings().admin_key is None and not store.has_active_keys()
    try:
        info, plaintext = store.create(role, name)
    except TswatchError as error:
        fail(error.detail)
    if opens:
        _announce_first_key(info.role)
    if as_json:
        print_json({"key": plaintext, **key_payload(info)})
        return
    console.print(f"Created {info.role.value} key [bold]{info.key_id}[/]{f' ({name})' if name else ''}.")
    console.print("Store it now; it will not be shown again:", style="yellow")
    typer.echo(plaintext)


def _announce_first_key(role: Role) -> None:
    """Say on stderr (stdout stays the key, or its JSON) that the server is no longer open, and how to get an
    admin key when this one is not."""
    error_console.print(
        "[yellow]This is the first API key: the server now requires a key for every request, of every role "
        "(read, write and admin); until now it was open to anyone who could reach it on loopback.[/]",
        soft_wrap=True,
    )
    if role is not Role.ADMIN:
        error_console.print(
            "Create an admin key to manage keys, aliases and webhooks: "
            "[bold]tswatch keys create --role admin --name admin[/]",
            soft_wrap=True,
        )


@keys_cli.command("list")
def list_keys(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List keys (ids, names, roles; never secrets)."""
    keys = _store().list(include_revoked=include_revoked)
    if as_json:
        print_json([key_payload(info) for info in keys])
        return
    if not keys:
        console.print("No API keys. Create one with `tswatch keys create --role admin`.")
        return
    table = Table(title="API keys")
    for column in ("key id", "name", "role", "created", "last used", "revoked"):
        table.add_column(column)
    for info in keys:
        payload = key_payload(info)
        table.add_row(
            info.key_id,
            info.name or "-",
            info.role.value,
            payload["created_at"],
            payload["last_used_at"] or "-",
            payload["revoked_at"] or "-",
        )
    console.print(table)


@keys_cli.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after `tsw_`).")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a key; running servers reject it within seconds."""
    try:
        info = _store().revoke(key_id)
    except TswatchError as error:
        fail(error.detail)
    if as_json:
        print_json(key_payload(info))
    else:
        console.print(f"Revoked key {info.key_id}.")


def register(cli: typer.Typer) -> None:
    cli.add_typer(keys_cli, name="keys")
