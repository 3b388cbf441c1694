"""Bodies of the registry routes: models, versions, aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.api.schemas.common import StrictModel, VersionNumber
from app.registry.manifest import Accuracy, Baselines, PublicManifest
from app.registry.store import VersionInfo
from app.timestamps import to_aware_utc

LOSES_TO = (
    "Baselines (`seasonal_naive`, `random_walk`) with a lower test MAE than the model: such a version is flagged, "
    "and the `production` alias refuses it unless forced. Empty: at least as good as both; null: trained before "
    "the check (not flagged, not guarded)."
)


class NoSummary(BaseModel):
    """An empty object: the version was published without a summary of its metrics (by a direct
    `Registry.publish` of older code), so they are only in its manifest."""

    model_config = ConfigDict(extra="forbid")


class VersionSummary(BaseModel):
    version: int = Field(description="Version number.")
    created_at: Annotated[datetime, AfterValidator(to_aware_utc)] = Field(
        description="When it was registered (UTC)."
    )
    aliases: list[str] = Field(description="Aliases pointing at this version.")
    metrics: Accuracy | NoSummary = Field(description="Test-split metrics of the model.")
    baselines: Baselines | NoSummary = Field(
        description="The same metrics for seasonal naive and random walk."
    )
    loses_to: list[str] | None = Field(description=LOSES_TO)

    @classmethod
    def of(cls, info: VersionInfo, aliases: list[str]) -> VersionSummary:
        summary = info.summary
        return cls(
            version=info.version,
            created_at=info.created_at,
            aliases=aliases,
            metrics=summary.metrics or NoSummary(),
            baselines=summary.baselines or NoSummary(),
            loses_to=summary.loses_to,
        )


class ModelSummary(BaseModel):
    name: str = Field(description="Model name.")
    latest_version: int | None = Field(description="Highest version number.")
    aliases: dict[str, int] = Field(description="Alias -> version.")
    versions: list[int] = Field(description="All version numbers.")


class ModelDetail(ModelSummary):
    default_version: int | None = Field(description="Version answering requests without ?version or ?alias.")
    version_details: list[VersionSummary] = Field(description="Every version with its test metrics.")


class VersionDetail(BaseModel):
    name: str = Field(description="Model name.")
    version: int = Field(description="Version number.")
    aliases: list[str] = Field(description="Aliases pointing at this version.")
    loses_to: list[str] | None = Field(description=LOSES_TO)
    manifest: PublicManifest = Field(description="Architecture, scaling, data fingerprint, metrics, history.")


class AliasRequest(StrictModel):
    version: VersionNumber = Field(description="Version the alias should point to.")
    force: bool = Field(
        False,
        description="Point `production` even at a version that loses to a naive baseline (refused with 409 "
        "otherwise). Other aliases are not guarded.",
    )


class AliasResponse(BaseModel):
    name: str = Field(description="Model name.")
    alias: str = Field(description="Alias name.")
    version: int = Field(description="Version it points to.")
