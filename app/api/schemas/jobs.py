"""Bodies of the training-job routes: the JSON series to train on, and the job as it is shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from app.api.schemas.common import NO_NUL, FiniteFloat, StrictModel, check_range
from app.jobs.inputs import SeriesInput
from app.jobs.options import TrainingOptions
from app.jobs.store import JobInfo, JobStatus
from app.timestamps import as_aware_utc, to_naive_utc

MIN_SERIES_POINTS = 3


class TrainingSeriesIn(StrictModel):
    id: Annotated[
        str, Field(min_length=1, max_length=200, description="Series id (forecasts name it)."), NO_NUL
    ]
    timestamps: list[datetime] = Field(
        min_length=MIN_SERIES_POINTS,
        description="ISO 8601 time of each value (UTC if no offset), oldest first, evenly spaced (gaps are "
        "filled as `tswatch train` fills them).",
    )
    values: list[FiniteFloat | None] = Field(
        min_length=MIN_SERIES_POINTS, description="The values; null marks a missing reading."
    )

    @field_validator("timestamps")
    @classmethod
    def _naive_utc(cls, stamps: list[datetime]) -> list[datetime]:
        naive = [to_naive_utc(stamp) for stamp in stamps]
        check_range(naive, "timestamps")
        return naive

    @model_validator(mode="after")
    def _same_length(self) -> Self:
        if len(self.timestamps) != len(self.values):
            raise ValueError(
                f"series {self.id!r}: {len(self.timestamps)} timestamps but {len(self.values)} values"
            )
        return self

    def input(self) -> SeriesInput:
        return SeriesInput(self.id, self.timestamps, self.values)


class TrainingSeriesRequest(StrictModel):
    """`POST /v1/models/{name}/versions` with `Content-Type: application/json`."""

    series: list[TrainingSeriesIn] = Field(
        min_length=1, description="The series to train one model on (several: one global model)."
    )
    options: TrainingOptions = Field(
        default_factory=TrainingOptions,
        description="Training options; those left out are chosen from the data. The column and CSV options "
        "(`time_col`, `value_col`, `id_col`, `sep`, `decimal`, `dayfirst`) apply to uploads only.",
    )

    @field_validator("options")
    @classmethod
    def _no_file_options(cls, options: TrainingOptions) -> TrainingOptions:
        given = options.file_options()
        if given:
            raise ValueError(f"{', '.join(given)}: these options say how to read an uploaded file")
        return options

    @field_validator("series")
    @classmethod
    def _unique_ids(cls, series: list[TrainingSeriesIn]) -> list[TrainingSeriesIn]:
        seen: set[str] = set()
        for item in series:
            if item.id in seen:
                raise ValueError(f"series id {item.id!r} appears twice")
            seen.add(item.id)
        return series


class JobProgressOut(BaseModel):
    phase: str = Field(
        description="queued, starting, loading data, training, evaluating (and registering), done."
    )
    epoch: int | None = Field(None, description="Epochs completed.")
    epochs: int | None = Field(None, description="Most epochs the run may take (it may stop early).")
    batch: int | None = Field(None, description="Batches done in the epoch under way.")
    batches_per_epoch: int | None = Field(None, description="Batches per epoch.")
    train_loss: float | None = Field(None, description="Training loss of the last completed epoch.")
    val_loss: float | None = Field(None, description="Validation loss of the last completed epoch.")
    best_val_loss: float | None = Field(None, description="Lowest validation loss so far.")


class JobOut(BaseModel):
    id: str = Field(description="Job id.")
    model: str = Field(description="Model the new version is registered under.")
    status: JobStatus = Field(description="queued, running, succeeded, failed or cancelled.")
    version: int | None = Field(description="The version registered (status succeeded), else null.")
    progress: JobProgressOut = Field(description="Where the job is.")
    metrics: dict[str, Any] | None = Field(
        description="Once succeeded: the version's test metrics next to the naive baselines (`metrics`, "
        "`baselines`), the training run (`training`: configuration, how each field was chosen, best "
        "epoch, seconds) and `refused_alias` (an alias not moved because the version loses to a baseline)."
    )
    error: str | None = Field(description="Why the job failed.")
    options: dict[str, Any] = Field(description="The training options as given.")
    source: str = Field(description="The uploaded file's name, or `series (JSON)`.")
    created_by: str | None = Field(
        description="Id of the API key that submitted the job (null: open server)."
    )
    created_at: datetime = Field(description="When the job was submitted (UTC).")
    started_at: datetime | None = Field(description="When a worker started on it (UTC).")
    finished_at: datetime | None = Field(description="When it succeeded, failed or was cancelled (UTC).")

    @classmethod
    def of(cls, job: JobInfo) -> JobOut:
        return cls(
            id=job.id,
            model=job.model_name,
            status=job.status,
            version=job.result_version,
            progress=JobProgressOut.model_validate(
                {key: value for key, value in job.progress.items() if key in JobProgressOut.model_fields}
            ),
            metrics=job.metrics,
            error=job.error,
            options=job.options,
            source=job.source,
            created_by=job.created_by,
            created_at=as_aware_utc(job.created_at),
            started_at=as_aware_utc(job.started_at),
            finished_at=as_aware_utc(job.finished_at),
        )


class JobPage(BaseModel):
    jobs: list[JobOut] = Field(description="Jobs, newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page (also in the `Link` header); null on the last page."
    )
