"""Which version of a model a request means: `?version=N` or `?alias=NAME` (default: production, else latest).

Parsed from the query string by `app.api.selection.parse_selection`. Both at once is refused with the domain's
422 (`InvalidInputError`, raised through pydantic unchanged: it is not a ValueError)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.schemas.common import MAX_VERSION
from app.errors import InvalidInputError


class ModelSelection(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="Version number; default: production, else latest."
    )
    alias: str | None = Field(None, max_length=64, description="Alias to use instead of a version.")

    @model_validator(mode="after")
    def _one_of_version_and_alias(self) -> ModelSelection:
        if self.version is not None and self.alias is not None:
            raise InvalidInputError(
                "pass either ?version or ?alias, not both",
                fields={"version": self.version, "alias": self.alias},
            )
        return self
