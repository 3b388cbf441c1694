"""The options of a training job: those `tswatch train` takes, every one optional.

Architecture and optimiser fields the caller leaves out are chosen from the data (`app.training.defaults`); those
given are passed as overrides. The same model reads a JSON body's `options` and a multipart upload's form
fields (strings there, converted by pydantic's lax mode).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.errors import InvalidInputError
from app.registry.store import validate_alias
from app.training.data.reading import ReadOptions


def _valid_alias(alias: str | None) -> str | None:
    try:
        return None if alias is None else validate_alias(alias)
    except InvalidInputError as error:
        raise ValueError(error.detail) from None


ColumnName = Annotated[str, Field(min_length=1, max_length=200)]

COLUMN_FIELDS: Final = ("time_col", "value_col", "id_col")
READ_FIELDS: Final = ("sep", "decimal", "dayfirst")
FILE_FIELDS: Final = (*COLUMN_FIELDS, *READ_FIELDS)  # how to read an upload: refused with JSON series
NOT_CONFIG: Final = (*FILE_FIELDS, "alias", "force")


class TrainingOptions(BaseModel):
    """Unknown options are refused (422)."""

    model_config = ConfigDict(extra="forbid")

    time_col: ColumnName | None = Field(
        None, description="Timestamp column of the upload (default `timestamp`)."
    )
    value_col: ColumnName | None = Field(None, description="Value column of the upload (default `value`).")
    id_col: ColumnName | None = Field(
        None, description="Series id column of the upload (long format: one global model over every series)."
    )
    sep: str | None = Field(
        None, min_length=1, max_length=3, description="CSV separator (`tab` for tabs); default: sniffed."
    )
    decimal: Literal[".", ","] | None = Field(
        None, description="Decimal mark of a CSV's numbers (default `.`)."
    )
    dayfirst: bool | None = Field(
        None, description="Read 03/04 as 3 April (default: detected from the dates)."
    )
    window: int | None = Field(None, ge=2, le=10_000, description="Past points the network reads.")
    horizon: int | None = Field(None, ge=1, le=10_000, description="Future points forecast at once.")
    cell: Literal["gru", "lstm", "rnn"] | None = Field(None, description="Recurrent cell.")
    hidden: int | None = Field(None, ge=1, le=4096, description="Hidden units per layer.")
    layers: int | None = Field(None, ge=1, le=16, description="Stacked recurrent layers.")
    dropout: float | None = Field(None, ge=0, lt=1, description="Dropout between layers.")
    patch_len: int | None = Field(None, ge=1, le=10_000, description="Points per recurrent step.")
    normalisation: Literal["instance", "last", "global"] | None = Field(None, description="Input scaling.")
    calendar: bool | None = Field(None, description="Calendar inputs (default: for sub-daily data).")
    epochs: int | None = Field(None, ge=1, le=10_000, description="Maximum epochs.")
    batch_size: int | None = Field(None, ge=1, le=65_536, description="Windows per batch.")
    lr: float | None = Field(None, gt=0, le=1, description="Learning rate (AdamW).")
    patience: int | None = Field(
        None, ge=1, le=10_000, description="Epochs without validation gain before stopping."
    )
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Random seed (runs are deterministic).")
    alias: Annotated[str | None, AfterValidator(_valid_alias)] = Field(
        None,
        description="Point this alias at the new version once it is registered (a guarded alias such as "
        "`production` is not moved to a version that loses to a naive baseline, unless `force`).",
    )
    force: bool = Field(
        False, description="Move a guarded `alias` even to a version that loses to a baseline."
    )

    def overrides(self) -> dict[str, object]:
        """The training-configuration fields the caller gave (the rest are chosen from the data)."""
        given = self.model_dump(exclude_none=True)
        return {key: value for key, value in given.items() if key not in NOT_CONFIG}

    def file_options(self) -> list[str]:
        """The names of the options given that say how to read an uploaded file."""
        return sorted(self.model_dump(include=set(FILE_FIELDS), exclude_none=True))

    def read_options(self) -> ReadOptions:
        return ReadOptions(sep=self.sep, decimal=self.decimal or ".", dayfirst=self.dayfirst)
