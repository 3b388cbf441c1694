"""The two bodies of `POST /v1/models/{name}/versions`: a multipart upload (`file` + options as form fields) or
JSON series (`TrainingSeriesRequest`). Both are read here and handed to the jobs service; errors are FastAPI's
(422 naming the field, 400 for malformed JSON) or the jobs' own (413 sizes, 415 other media types)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.api.body_parsing import body_validation_error, is_json_media_type, parse_body, request_body_openapi
from app.api.schemas.jobs import TrainingSeriesRequest
from app.concurrency import run_blocking
from app.errors import PayloadTooLargeError, TswatchError
from app.jobs.inputs import TABLE_SUFFIXES, SeriesInput
from app.jobs.options import TrainingOptions

FILE_FIELD: Final = "file"
MAX_FORM_FIELDS: Final = 64
MULTIPART: Final = "multipart/form-data"


class UnsupportedTrainingBodyError(TswatchError):
    status = 415
    title = "Unsupported media type"
    slug = "unsupported-media-type"


@dataclass(frozen=True)
class Upload:
    file: IO[bytes]
    filename: str | None
    options: TrainingOptions


@dataclass(frozen=True)
class JsonSeries:
    series: list[SeriesInput]
    options: TrainingOptions


def is_multipart(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == MULTIPART


@asynccontextmanager
async def read_upload(request: Request) -> AsyncIterator[Upload]:
    """The uploaded file (spooled to a temporary file by the multipart parser) and the options of the form;
    the temporary file is closed when the block exits."""
    async with request.form(max_files=1, max_fields=MAX_FORM_FIELDS) as form:
        upload = form.get(FILE_FIELD)
        if not isinstance(upload, UploadFile):
            raise RequestValidationError(
                [{"type": "missing", "loc": ("body", FILE_FIELD), "msg": "a file upload is required"}]
            )
        fields: dict[str, Any] = {key: value for key, value in form.multi_items() if key != FILE_FIELD}
        try:
            options = TrainingOptions.model_validate(fields)
        except ValidationError as error:
            raise body_validation_error(error) from None
        yield Upload(upload.file, upload.filename, options)


async def read_series(request: Request, max_json_bytes: int) -> JsonSeries:
    """The JSON series and options (parsed in a worker thread); a body over `max_json_bytes` answers 413."""
    body = await request.body()
    if len(body) > max_json_bytes:
        raise PayloadTooLargeError(
            f"a JSON training body is limited to {max_json_bytes} bytes (TSWATCH_MAX_BODY_BYTES); upload the "
            "data as a CSV or Parquet file (multipart field `file`) instead",
            fields={"max_body_bytes": max_json_bytes},
        )
    parsed = await run_blocking(parse_body, TrainingSeriesRequest, request.headers.get("content-type"), body)
    return JsonSeries([item.input() for item in parsed.series], parsed.options)


def body_kind(request: Request) -> str:
    """`multipart` or `json`; 415 for anything else."""
    content_type = request.headers.get("content-type")
    if is_multipart(content_type):
        return "multipart"
    if is_json_media_type(content_type):
        return "json"
    raise UnsupportedTrainingBodyError(
        f"send the training data as {MULTIPART} (a `file` field and options as fields) or as "
        "application/json series"
    )


def training_body_openapi() -> dict[str, Any]:
    """Both bodies in the OpenAPI document."""
    extra = request_body_openapi(TrainingSeriesRequest)
    options = request_body_openapi(TrainingOptions)["requestBody"]["content"]["application/json"]["schema"]
    file_schema = {
        "type": "string",
        "format": "binary",
        "description": f"The table to train on ({', '.join('*' + s for s in TABLE_SUFFIXES)}).",
    }
    extra["requestBody"]["content"][MULTIPART] = {
        "schema": {
            "type": "object",
            "properties": {FILE_FIELD: file_schema, **options.get("properties", {})},
            "required": [FILE_FIELD],
        }
    }
    return extra
