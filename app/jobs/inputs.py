"""A job's input, saved in its folder before the job is queued: the uploaded file as sent, or the JSON series
written as a long-format CSV. Each job has its own folder under the models folder:

    <models_dir>/.jobs/<job id>/<file>       the input (removed when the job finishes)
    <models_dir>/.jobs/<job id>/worker.log   the worker's output (kept)

The dot keeps the folder out of the registry's model folders (no model can be named `.jobs`).
"""

from __future__ import annotations

import csv
import gzip
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Final

import pandas as pd

from app.jobs.errors import InvalidTrainingInputError, TrainingInputTooLargeError
from app.timestamps import to_iso_z

JOBS_DIR: Final = ".jobs"
LOG_FILE: Final = "worker.log"
SERIES_FILE: Final = "series.csv"
SERIES_SOURCE: Final = "series (JSON)"
SERIES_COLUMNS: Final = ("series", "timestamp", "value")  # id, time, value columns of SERIES_FILE
TABLE_SUFFIXES: Final = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".parquet", ".pq")
DEFAULT_UPLOAD_NAME: Final = "upload.csv"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
COPY_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True)
class SeriesInput:
    id: str
    timestamps: Sequence[datetime]
    values: Sequence[float | None]


def job_dir(models_dir: Path, job_id: str) -> Path:
    return models_dir / JOBS_DIR / job_id


def upload_name(filename: str | None) -> str:
    """A safe file name for an upload, keeping the extension that says how to read it (the name shows in
    messages about the data, and as the version's data source)."""
    base = _UNSAFE.sub("_", Path(filename or DEFAULT_UPLOAD_NAME).name).lstrip("._") or DEFAULT_UPLOAD_NAME
    if not base.lower().endswith(TABLE_SUFFIXES):
        raise InvalidTrainingInputError(
            f"upload {filename!r} is not a table this server reads: send a file named "
            f"{', '.join('*' + suffix for suffix in TABLE_SUFFIXES)}",
            fields={"field": "file"},
        )
    return base[-200:]


def save_upload(source: IO[bytes], target: Path, max_bytes: int) -> int:
    """Copy an upload into `target` (its folder is created); the bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with target.open("wb") as out:
        while chunk := source.read(COPY_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise TrainingInputTooLargeError(
                    f"the upload exceeds the limit of {max_bytes} bytes",
                    fields={"max_upload_bytes": max_bytes},
                )
            out.write(chunk)
    if written == 0:
        raise InvalidTrainingInputError("the uploaded file is empty", fields={"field": "file"})
    return written


def count_rows(path: Path) -> int:
    """Data rows of a saved table without parsing it: Parquet's footer, or a text file's lines less the
    header (quoted values spanning lines count extra: an upper bound, which is what a limit needs)."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        try:
            return len(pd.read_parquet(path, columns=[]))  # the footer only
        except Exception as error:
            raise InvalidTrainingInputError(
                f"{path.name} is not a readable Parquet file: {error}", fields={"field": "file"}
            ) from error
    opener = gzip.open if name.endswith(".gz") else open
    lines, last = 0, b"\n"
    try:
        with opener(path, "rb") as handle:
            while chunk := handle.read(COPY_CHUNK):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except (OSError, EOFError) as error:
        raise InvalidTrainingInputError(
            f"cannot read {path.name}: {error}", fields={"field": "file"}
        ) from error
    lines += last != b"\n"  # a last line without a newline
    return max(lines - 1, 0)


def check_rows(rows: int, max_rows: int) -> None:
    if rows > max_rows:
        raise TrainingInputTooLargeError(
            f"the training data has {rows} rows; this server trains on at most {max_rows}",
            fields={"rows": rows, "max_training_rows": max_rows},
        )


def check_series(count: int, max_series: int) -> None:
    if count > max_series:
        raise TrainingInputTooLargeError(
            f"the training data has {count} series; this server trains on at most {max_series}",
            fields={"series": count, "max_training_series": max_series},
        )


def write_series(series: Iterable[SeriesInput], target: Path) -> None:
    """The JSON series as a long-format CSV (`series,timestamp,value`; a missing value is an empty cell)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(SERIES_COLUMNS)
        for item in series:
            for stamp, value in zip(item.timestamps, item.values, strict=True):
                writer.writerow((item.id, to_iso_z(stamp), "" if value is None else repr(float(value))))


def remove_input(folder: Path) -> None:
    """Drop a finished job's input: every file of its folder but the log."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name != LOG_FILE and entry.is_file():
                entry.unlink(missing_ok=True)


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
