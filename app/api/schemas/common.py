"""Pieces every API schema module shares: strict bodies, limits, timestamp checks, the model reference."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from app.timestamps import MAX_TIMESTAMP, MIN_TIMESTAMP

MAX_POINTS = 200_000
MAX_SERIES = 1_000
MAX_VERSION = 2**31 - 1  # beyond any real version; larger numbers overflow the database's integers

FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""A request's number: a finite JSON number (integers too); strings and booleans are refused. Strict mode is
checked by pydantic-core itself, so long value lists stay as fast to validate as lax ones."""


def _no_string_or_boolean(value: object) -> object:
    if isinstance(value, str | bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


NUMBERS_ONLY = BeforeValidator(_no_string_or_boolean)
"""Makes a request's integer field refuse strings and booleans yet accept 3.0 (a JSON Schema integer, which
pydantic's strict mode would refuse). Put it last in the field's `Annotated`, after its `Field` constraints:
placed before them, the constraints are checked but missing from the OpenAPI document. For single fields only
(it runs in Python)."""

VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION), NUMBERS_ONLY]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("string_nul", "String should not contain NUL characters (U+0000)")
    return value


NO_NUL = AfterValidator(_no_nul)
"""For request text that reaches the database (ids, labels): PostgreSQL refuses NUL characters in text where
SQLite stores them, so they are a 422 on every backend rather than a database error. Last in the `Annotated`."""


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
