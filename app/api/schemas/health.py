"""Bodies of `/healthz` and `/readyz`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.api.schemas.common import ModelRef


class HealthResponse(BaseModel):
    status: Literal["ok"] = Field(description="Always ok while the process serves requests.")


class ReadinessResponse(BaseModel):
    status: Literal["ready", "not_ready"] = Field(description="ready when every check passes.")
    checks: dict[str, str] = Field(
        description=(
            "Each check's outcome: `models` (loaded/loading), `database` (backend and reachability, e.g. "
            "`postgresql: reachable`), `registry` (reachable or unreachable: the registry lives in that "
            "database), and `load_problems` when a default model failed to load."
        ),
        examples=[{"models": "loaded", "database": "postgresql: reachable", "registry": "reachable"}],
    )
    models: list[ModelRef] = Field(description="Loaded model versions.")
