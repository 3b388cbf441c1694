"""Which version of a model a request means: `?version=N` or `?alias=NAME` (default: production, else latest).

Parsed from the query string by `app.api.selection.parse_selection`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import MAX_VERSION


class ModelSelection(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="Version number; default: production, else latest."
    )
    alias: str | None = Field(None, max_length=64, description="Alias to use instead of a version.")
