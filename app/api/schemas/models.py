"""Bodies of the registry routes: models, versions, aliases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from app.api.schemas.common import MAX_VERSION, StrictModel
from app.registry.manifest import PublicManifest


class VersionSummary(BaseModel):
    version: int = Field(description="Version number.")
    created_at: datetime = Field(description="When it was registered (UTC).")
    aliases: list[str] = Field(description="Aliases pointing at this version.")
    metrics: dict[str, Any] = Field(description="Test-split metrics of the model.")
    baselines: dict[str, Any] = Field(description="The same metrics for seasonal naive and random walk.")

    @field_validator("created_at")
    @classmethod
    def _mark_utc(cls, stamp: datetime) -> datetime:
        """The registry stores naive UTC; say so, or the value is not an RFC 3339 date-time."""
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


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
    manifest: PublicManifest = Field(description="Architecture, scaling, data fingerprint, metrics, history.")


class AliasRequest(StrictModel):
    version: int = Field(ge=1, le=MAX_VERSION, description="Version the alias should point to.")


class AliasResponse(BaseModel):
    name: str = Field(description="Model name.")
    alias: str = Field(description="Alias name.")
    version: int = Field(description="Version it points to.")
