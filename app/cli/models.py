"""`tswatch models list|show|alias|unalias|delete|gc`: inspect the registry, move aliases, delete versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.output import console, fail, print_json
from app.cli.plots import plot_training_report
from app.cli.quality import manifest_losses, warn_if_losing
from app.cli.train import coverage_table, metrics_table
from app.errors import TswatchError
from app.registry.factory import open_registry
from app.registry.gc import DEFAULT_MIN_AGE_SECONDS, Leftover, collect
from app.registry.store import Registry
from app.settings import Settings
from app.timestamps import to_iso_z

models_cli = typer.Typer(help="Inspect registered models and move aliases.", no_args_is_help=True)


def _registry() -> Registry:
    return open_registry(Settings())


def parse_reference(reference: str) -> tuple[str, int | None, str | None]:
    """`NAME`, `NAME@3` or `NAME@staging` -> (name, version, alias)."""
    name, _, selector = reference.partition("@")
    if not selector:
        return name, None, None
    if selector.isdigit():
        return name, int(selector), None
    return name, None, selector


@models_cli.command("list")
def list_models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List models with their versions and aliases."""
    models = _registry().list_models()
    if as_json:
        print_json(
            [
                {
                    "name": m.name,
                    "versions": m.versions,
                    "latest_version": m.latest_version,
                    "aliases": m.aliases,
                }
                for m in models
            ]
        )
        return
    table = Table(title="Registered models")
    for column in ("name", "versions", "latest", "aliases"):
        table.add_column(column)
    for model in models:
        aliases = ", ".join(f"{alias}→{version}" for alias, version in sorted(model.aliases.items()))
        table.add_row(model.name, str(len(model.versions)), str(model.latest_version), aliases or "-")
    console.print(table if models else "No models registered yet. Train one with `tswatch train`.")


@models_cli.command("show")
def show_model(
    reference: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also write the training report PNG (loss curves, test forecast, residuals) here."),
    ] = None,
) -> None:
    """Show one version's manifest and test metrics (default: production alias, else latest)."""
    name, version, alias = parse_reference(reference)
    registry = _registry()
    try:
        info = registry.resolve(name, version=version, alias=alias)
        manifest = registry.read_manifest(info)
    except TswatchError as error:
        fail(error.detail)
    if plot is not None:
        try:
            plot_training_report(manifest, plot, title=f"{name} v{info.version}")
        except (OSError, ValueError) as error:
            fail(f"could not write the plot to {plot}: {error}")
    if as_json:
        print_json(manifest.model_dump(mode="json"))
        return
    spec, training, data = manifest.spec, manifest.training, manifest.data
    console.print(
        f"[bold]{name}[/] version [bold]{info.version}[/] created {to_iso_z(manifest.created_at)}\n"
        f"{spec.network.cell.upper()} {spec.network.num_layers}x{spec.network.hidden_size}, "
        f"window {spec.window}, horizon {spec.horizon}, frequency {spec.frequency}, "
        f"normalisation {spec.scaling.mode}, calendar {', '.join(spec.calendar_features) or 'none'}\n"
        f"data {data.source} ({data.fingerprint[:12]}), "
        f"best epoch {training.best_epoch} of {len(training.history)}, weights sha256 {info.weights_sha256[:12]}"
    )
    console.print(metrics_table(manifest.metrics))
    console.print(coverage_table(manifest.metrics))
    warn_if_losing(manifest_losses(manifest), name, info.version)
    if plot is not None:
        console.print(f"report plot written to {plot}", soft_wrap=True)


@models_cli.command("alias")
def set_alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production or staging.")],
    version: Annotated[int, typer.Argument(help="Version the alias should point to.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Point production even at a version that loses to a naive baseline."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Point ALIAS at VERSION (atomic; running servers pick it up within seconds).

    `production` refuses a version whose test MAE is worse than seasonal naive or random walk unless --force;
    other aliases are not guarded."""
    try:
        _registry().set_alias(name, alias, version, force=force)
    except TswatchError as error:
        fail(error.detail)
    if as_json:
        print_json({"name": name, "alias": alias, "version": version})
    else:
        console.print(f"{name}@{alias} → version {version}")


@models_cli.command("unalias")
def delete_alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to remove.")],
) -> None:
    """Remove an alias."""
    try:
        _registry().delete_alias(name, alias)
    except TswatchError as error:
        fail(error.detail)
    console.print(f"removed {name}@{alias}")


@models_cli.command("delete")
def delete_version(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to delete.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete VERSION with its files (refused while an alias points at it; its number is never reused).
    Streams pinned to it keep their points and answer 409 on their next append until re-pointed."""
    try:
        _registry().delete_version(name, version)
    except TswatchError as error:
        fail(error.detail)
    if as_json:
        print_json({"name": name, "version": version, "deleted": True})
    else:
        console.print(f"deleted {name} version {version}")


# -------------------------------------------------------------------- gc: leftovers of killed publishes
def leftover_payload(leftover: Leftover) -> dict[str, Any]:
    return {
        "model": leftover.model,
        "path": str(leftover.path),
        "kind": leftover.kind,
        "version": leftover.version,
        "age_seconds": round(leftover.age_seconds, 1),
        "action": leftover.action,
    }


@models_cli.command("gc")
def collect_garbage(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    min_age: Annotated[
        float,
        typer.Option("--min-age", min=0, help="Keep leftovers modified less than this many seconds ago."),
    ] = DEFAULT_MIN_AGE_SECONDS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Remove leftovers of killed publishes: `.staging-*` folders and version folders with no registry row, and
    stored files of versions whose row was deleted.

    Models with a publish in progress (in any process) are skipped; registered versions are never touched.
    """
    registry = _registry()
    try:
        leftovers = collect(registry, min_age, dry_run=dry_run)
    except OSError as error:
        fail(f"could not clean {registry.root}: {error}")
    if as_json:
        print_json([leftover_payload(leftover) for leftover in leftovers])
    elif not leftovers:
        console.print(f"No leftovers in {registry.root}.", soft_wrap=True)
    else:
        table = Table(title=f"Leftovers in {registry.root}")
        for column in ("model", "kind", "folder", "age (s)", "action"):
            table.add_column(column)
        for leftover in leftovers:
            age = f"{leftover.age_seconds:.0f}"
            table.add_row(leftover.model, leftover.kind, leftover.path.name, age, leftover.action)
        console.print(table)
    if any(leftover.failed for leftover in leftovers):
        raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    cli.add_typer(models_cli, name="models")
