"""The CLI side of "never silently worse than naive": the warning on a version that loses to a naive baseline,
and the refusal when `--alias production` is asked for such a version without `--force`."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from app.cli.output import error_console
from app.registry.manifest import Manifest, VersionSummary
from app.registry.quality import PRODUCTION_ALIAS, BaselineLoss, baseline_losses, describe_losses


def manifest_losses(manifest: Manifest) -> list[BaselineLoss]:
    return baseline_losses(VersionSummary.of(manifest))


def warn_if_losing(losses: list[BaselineLoss], name: str, version: int) -> None:
    """One yellow warning on stderr naming each baseline the version loses to, with both test MAEs."""
    if losses:
        error_console.print(
            f"[bold yellow]warning:[/] {escape(name)} version {version} is worse than naive: it loses to "
            f"{escape(describe_losses(losses))} on the test split; alias {PRODUCTION_ALIAS!r} refuses it unless forced",
            highlight=False,
            soft_wrap=True,
        )


def refusal_message(name: str, alias: str, version: int, losses: list[BaselineLoss]) -> str:
    """Why `tswatch train --alias ALIAS` registered the version without pointing the alias, and how to force."""
    return (
        f"alias {alias!r} was not pointed at {name} version {version}: it loses to {describe_losses(losses)} "
        f"on the test split. Point it anyway with `tswatch models alias {name} {alias} {version} --force` "
        "(or train with --force)"
    )


def losses_json(losses: list[BaselineLoss]) -> list[dict[str, Any]]:
    return [loss.to_dict() for loss in losses]
