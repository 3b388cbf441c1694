"""Training over HTTP: submit a training job (a new model version), follow it, list and cancel jobs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Final

from fastapi import APIRouter, Path, Query, Request, Response, status

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import JobsDep, ReadAccess, WriteAccess
from app.api.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    decode_cursor,
    encode_cursor,
    link_next,
    page,
)
from app.api.schemas.jobs import JobOut, JobPage
from app.api.training_bodies import body_kind, read_series, read_upload, training_body_openapi
from app.jobs.service import Submission
from app.jobs.store import JobStatus

router = APIRouter(tags=["training jobs"], route_class=AuthenticatedRoute)

UPLOAD_PATH: Final = re.compile(r"/v1/models/[^/]+/versions")  # its bodies get TSWATCH_MAX_UPLOAD_BYTES

JobId = Annotated[str, Path(min_length=1, max_length=32, pattern="^[0-9a-f]+$", description="Job id.")]


@router.post(
    "/v1/models/{name}/versions",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=training_body_openapi(),
    responses={413: {"description": "The upload, its rows or its series exceed this server's limits."}},
)
async def train_version(
    name: Annotated[str, Path(max_length=64, description="Model name (created by its first version).")],
    request: Request,
    response: Response,
    jobs: JobsDep,
    principal: WriteAccess,
) -> JobOut:
    """Train a new version of model `name` in a worker process: upload a CSV/Parquet file as multipart field
    `file` with the training options as form fields, or send JSON series with `options`. Options left out are
    chosen from the data. Answers 202 with the queued job (`Location: /v1/jobs/{id}`)."""
    if body_kind(request) == "multipart":
        async with read_upload(request) as upload:
            submission = Submission(name, upload.options, principal.key_id)
            job = await jobs.submit_upload(submission, upload.file, upload.filename)
    else:
        body = await read_series(request, jobs.settings.max_body_bytes)
        job = await jobs.submit_series(Submission(name, body.options, principal.key_id), body.series)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobOut.of(job)


@router.get("/v1/jobs", response_model=JobPage)
async def list_jobs(
    request: Request,
    response: Response,
    jobs: JobsDep,
    _: ReadAccess,
    model: Annotated[str | None, Query(max_length=64, description="Only jobs of this model.")] = None,
    job_status: Annotated[
        JobStatus | None, Query(alias="status", description="Only jobs in this status.")
    ] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> JobPage:
    """Training jobs, newest first, a page at a time: follow `next_cursor` (or the `Link: rel="next"` header)."""
    after = None
    if cursor is not None:
        created_at, job_id = decode_cursor("jobs", cursor, [datetime, str])
        after = (created_at, str(job_id)) if isinstance(created_at, datetime) else None
    items, more = page(await jobs.newest(limit + 1, after, model, job_status), limit)
    next_cursor = encode_cursor("jobs", [items[-1].created_at, items[-1].id]) if more else None
    link_next(request, response, next_cursor)
    return JobPage(jobs=[JobOut.of(item) for item in items], next_cursor=next_cursor)


@router.get("/v1/jobs/{job_id}", response_model=JobOut)
async def read_job(job_id: JobId, jobs: JobsDep, _: ReadAccess) -> JobOut:
    """A job's status, progress (phase, epoch of epochs, losses), metrics and registered version."""
    return JobOut.of(await jobs.get(job_id))


@router.delete("/v1/jobs/{job_id}", response_model=JobOut)
async def cancel_job(job_id: JobId, jobs: JobsDep, _: WriteAccess) -> JobOut:
    """Cancel a queued or running job: its worker is stopped and no version is registered. 409 once it has
    succeeded or failed; cancelling a cancelled job answers it again."""
    return JobOut.of(await jobs.cancel(job_id))
