"""Never silently worse than naive: a version that loses to a naive baseline on its test split is flagged, and
the aliases that serve production traffic refuse it unless the caller forces it.

The rule (`losing_baselines`) runs once, when a version is evaluated after training; its answer is recorded as
`loses_to` in the manifest's metrics and in the registry row's summary, and the guard reads that record. A
version trained before the check has no record (`loses_to` null): it is not flagged and not guarded, so rolling
back to it works as before. Only the aliases in `GUARDED_ALIASES` are guarded: the others (`staging`, `canary`,
...) exist to try versions out, flagged ones included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from app.errors import ConflictError
from app.registry.manifest import Accuracy, Baselines, VersionSummary

PRODUCTION_ALIAS: Final = "production"
GUARDED_ALIASES: Final = frozenset({PRODUCTION_ALIAS})
"""Aliases that refuse a version losing to a naive baseline unless forced: the registry's default alias."""

LOSS_TOLERANCE: Final = 1e-6
"""Relative MAE margin within which a model ties a baseline instead of losing to it: a model that forecasts
exactly its baseline differs from it only by float rounding, and is not flagged."""

BASELINE_LABELS: Final = {"seasonal_naive": "seasonal naive", "random_walk": "random walk"}


def _named(baselines: Baselines) -> dict[str, Accuracy]:
    return {"seasonal_naive": baselines.seasonal_naive, "random_walk": baselines.random_walk}


def losing_baselines(model: Accuracy, baselines: Baselines) -> list[str]:
    """The rule: the baselines whose test MAE is lower than the model's (beyond float rounding)."""
    return [
        name
        for name, baseline in _named(baselines).items()
        if model.mae > baseline.mae * (1 + LOSS_TOLERANCE)
    ]


@dataclass(frozen=True)
class BaselineLoss:
    """The model's test MAE against that of one baseline with a lower one."""

    baseline: str  # "seasonal_naive" | "random_walk"
    model_mae: float
    baseline_mae: float

    def describe(self) -> str:
        label = BASELINE_LABELS.get(self.baseline, self.baseline)
        return f"{label} (test MAE {self.model_mae:.4g} against {self.baseline_mae:.4g})"

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "model_mae": self.model_mae, "baseline_mae": self.baseline_mae}


def baseline_losses(summary: VersionSummary) -> list[BaselineLoss]:
    """The recorded losses of a version with both MAEs (none when it has no record or no metrics)."""
    if not summary.loses_to or summary.metrics is None or summary.baselines is None:
        return []
    named = _named(summary.baselines)
    return [BaselineLoss(name, summary.metrics.mae, named[name].mae) for name in summary.loses_to]


def describe_losses(losses: list[BaselineLoss]) -> str:
    """E.g. `seasonal naive (test MAE 590 against 446) and random walk (...)`."""
    return " and ".join(loss.describe() for loss in losses)


class FlaggedVersionError(ConflictError):
    title = "Version loses to a naive baseline"
    slug = "version-loses-to-baseline"


def refusing_losses(alias: str, summary: VersionSummary, *, force: bool = False) -> list[BaselineLoss]:
    """The losses for which `alias` refuses the version: none when forced, when the alias is not guarded, or
    when the version loses to no baseline."""
    if force or alias not in GUARDED_ALIASES:
        return []
    return baseline_losses(summary)


def check_alias_target(
    name: str, version: int | None, alias: str, summary: VersionSummary, *, force: bool = False
) -> None:
    """Refuse (FlaggedVersionError, 409) pointing a guarded alias at a version that loses to a baseline,
    unless `force`. `version` is None for a version not registered yet."""
    losses = refusing_losses(alias, summary, force=force)
    if not losses:
        return
    which = f"version {version} of model {name!r}" if version is not None else f"the new version of {name!r}"
    raise FlaggedVersionError(
        f"{which} loses to {describe_losses(losses)} on its test split, so alias {alias!r} was not pointed "
        f'at it; to point it anyway use --force (tswatch train / tswatch models alias) or "force": true '
        f"(PUT /v1/models/{name}/aliases/{alias})",
        fields={
            "name": name,
            "version": version,
            "alias": alias,
            "loses_to": [loss.to_dict() for loss in losses],
        },
    )
