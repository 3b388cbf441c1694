"""The training worker: `python -m app.jobs.runner JOB_ID`, started by the server that claimed the job.

It trains on the input saved in the job's folder (its working directory, so messages about the data name the
file as uploaded, not a server path) with the job's options, reports progress to the job's row, and registers
the version through `job_registry` (the job succeeds in the same transaction). A data or option error fails the
job with its message; anything else with its type and message, the traceback going to the job's log. The
process dies with its server (`die_with_parent`); a cancel makes its next progress write stop it, or the server
kills it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from app.errors import TswatchError
from app.jobs.errors import JobStoppedError
from app.jobs.inputs import SERIES_COLUMNS, SERIES_SOURCE, check_series, job_dir
from app.jobs.options import TrainingOptions
from app.jobs.progress import JobProgress
from app.jobs.publishing import job_registry
from app.jobs.store import JobInfo, JobStore
from app.processes import die_with_parent
from app.registry.factory import open_registry
from app.registry.store import Registry
from app.settings import Settings
from app.storage.database import Database
from app.training.data.errors import DataValidationError
from app.training.data.parsing import DEFAULT_TIME_COL, DEFAULT_VALUE_COL
from app.training.data.reading import ReadOptions, read_table
from app.training.pipeline import TrainingResult, train_file

logger = logging.getLogger("tswatch.jobs.worker")

CLEAR_ERRORS = (DataValidationError, TswatchError, ValueError)  # their message says what to change


def train(job: JobInfo, registry: Registry, progress: JobProgress, settings: Settings) -> TrainingResult:
    options = TrainingOptions.model_validate(job.options)
    path = Path(job.input_file)
    progress.phase("loading data")
    id_col: str | None
    if job.source == SERIES_SOURCE:  # written by the server: its own columns, already counted
        id_col, time_col, value_col = SERIES_COLUMNS
    else:
        id_col = options.id_col
        time_col, value_col = options.time_col or DEFAULT_TIME_COL, options.value_col or DEFAULT_VALUE_COL
        if id_col is not None:
            check_series(series_count(path, options.read_options(), id_col), settings.max_training_series)
    return train_file(
        path,
        job.model_name,
        registry,
        None,
        time_col=time_col,
        value_col=value_col,
        id_col=id_col,
        read_options=options.read_options(),
        alias=options.alias,
        force=options.force,
        overrides=options.overrides(),
        progress=progress,
    )


def series_count(path: Path, read_options: ReadOptions, id_col: str) -> int:
    """Distinct ids of an upload (0 without that column: the training's own message then names it)."""
    frame = read_table(path, read_options)
    return int(frame[id_col].nunique()) if id_col in frame.columns else 0


def summary(result: TrainingResult) -> dict[str, Any]:
    """What a succeeded job shows besides the version's test metrics: the training run and configuration."""
    training = result.manifest.training.model_dump(mode="json", exclude={"history"})
    return {"training": training, "refused_alias": result.refused_alias}


def run(job_id: str, settings: Settings) -> int:
    database = Database(settings.resolved_database_url)
    try:
        jobs = JobStore(database)
        job = jobs.get(job_id)
        # The registry resolves the models folder before the worker moves into the job's folder.
        registry = job_registry(open_registry(settings, database), jobs, job_id)
        os.chdir(job_dir(registry.root, job_id))
        jobs.set_worker(job_id, os.getpid())
        progress = JobProgress(lambda state: jobs.report_progress(job_id, state))
        try:
            result = train(job, registry, progress, settings)
        except JobStoppedError:
            logger.info("job %s stopped (cancelled, or failed by a server): nothing registered", job_id)
            return 0
        except CLEAR_ERRORS as error:
            logger.info("job %s failed: %s", job_id, error)
            jobs.fail(job_id, str(error))
            return 1
        except Exception as error:
            logger.exception("job %s failed", job_id)
            jobs.fail(
                job_id, f"training failed: {type(error).__name__}: {error} (the worker log has details)"
            )
            return 1
        jobs.add_metrics(job_id, summary(result))
        logger.info("job %s registered %s v%s", job_id, result.version.name, result.version.version)
        return 0
    finally:
        database.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.jobs.runner", description=__doc__)
    parser.add_argument("job_id")
    parser.add_argument("--parent", type=int, default=None, help="pid of the server that started the worker")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings()
    torch.set_num_threads(settings.torch_threads)
    return run(args.job_id, settings)


if __name__ == "__main__":
    sys.exit(main())
