"""Pieces every API schema module shares: strict bodies, limits, timestamp checks, the model reference."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.timestamps import MAX_TIMESTAMP, MIN_TIMESTAMP

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MAX_POINTS = 200_000
MAX_SERIES = 1_000
MAX_VERSION = 2**31 - 1  # beyond any real version; larger numbers overflow the database's integers


class StrictModel(BaseModel):
    """A request body: unknown fields are refused (422), not ignored."""

    model_config = ConfigDict(extra="forbid")


def check_range(stamps: list[datetime], field: str) -> None:
    """Naive-UTC stamps inside numpy's datetime64[ns] range, with room for the forecast horizon."""
    for index, stamp in enumerate(stamps):
        if not MIN_TIMESTAMP <= stamp < MAX_TIMESTAMP:
            raise ValueError(
                f"{field}: {stamp.isoformat()} at index {index} is out of range; "
                f"timestamps must lie in [{MIN_TIMESTAMP.isoformat()}, {MAX_TIMESTAMP.isoformat()})"
            )


def check_increasing(stamps: list[datetime], field: str) -> None:
    for index in range(1, len(stamps)):
        if stamps[index] == stamps[index - 1]:
            raise ValueError(f"{field}: duplicate timestamp {stamps[index].isoformat()} at index {index}")
        if stamps[index] < stamps[index - 1]:
            raise ValueError(
                f"{field}: timestamps must increase; index {index} ({stamps[index].isoformat()}) "
                f"comes before index {index - 1} ({stamps[index - 1].isoformat()})"
            )


class ModelRef(BaseModel):
    name: str = Field(description="Model name.")
    version: int = Field(description="Version that answered.")
