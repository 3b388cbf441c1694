"""Training jobs in the server: submit, list, read, cancel; run them in worker processes; recover orphans.

A submitted job's input is saved in its folder (`app.jobs.inputs`) before its row is queued. A scheduler task
claims queued jobs (oldest first, at most `max_training_jobs` running in this server; a claim is a conditional
UPDATE, so two replicas never run one job) and runs each in a worker process (`app.jobs.runner`), never in the
server's process: the event loop only waits for the process. The same task refreshes the heartbeat of this
server's running jobs and stops the workers of jobs cancelled on another replica.

A job's owner is this server instance ("host:pid:token"). A running job whose owner is gone is failed, never
re-run: at start and on every round, a server fails the running jobs of a dead server on its own host (its pid
is gone, or is this very process under a new token: a restarted container), killing a worker left behind, and
any running job whose heartbeat is older than `job_stale_seconds` (a replica on another host died). Nothing is
registered for a failed or cancelled job (`app.jobs.publishing`).

A job runs where its input is: a server only claims jobs whose folder it has (replicas on one host share it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Final

from app.concurrency import run_blocking
from app.jobs import runner
from app.jobs.inputs import (
    LOG_FILE,
    SERIES_FILE,
    SERIES_SOURCE,
    SeriesInput,
    check_rows,
    check_series,
    count_rows,
    job_dir,
    remove_folder,
    remove_input,
    save_upload,
    upload_name,
    write_series,
)
from app.jobs.options import TrainingOptions
from app.jobs.store import JobInfo, JobStatus, JobStore, NewJob, stale_before
from app.processes import pid_namespace, process_alive, process_arguments
from app.registry.store import validate_model_name
from app.settings import Settings
from app.storage.database import Database

logger = logging.getLogger("tswatch.jobs")

STOPPED_SERVER: Final = (
    "the server running this job stopped before it finished; nothing was registered; submit the job again"
)


@dataclass(frozen=True)
class Owner:
    """A server instance: its host, its pid and a token unique to this start."""

    host: str
    pid: int
    token: str

    @classmethod
    def current(cls) -> Owner:
        """This process; its "host" is the host name and the pid namespace, where its pid means something."""
        host = f"{socket.gethostname()}/{pid_namespace()}".replace(":", "_")
        return cls(host, os.getpid(), uuid.uuid4().hex[:12])

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        host, _, rest = (text or "").partition(":")
        pid, _, token = rest.partition(":")
        return cls(host, int(pid), token) if host and pid.isdigit() and token else None

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    def gone(self, me: Owner) -> bool:
        """Whether this owner, on `me`'s host, has stopped (unknowable for another host: see heartbeats)."""
        if self.host != me.host or self == me:
            return False
        return self.pid == me.pid or not process_alive(self.pid)


@dataclass(frozen=True)
class Submission:
    name: str
    options: TrainingOptions
    created_by: str | None


class JobService:
    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.store = JobStore(database)
        self.owner = Owner.current()
        self.models_dir = settings.models_dir.resolve()
        self._workers: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._stopping = False

    # ------------------------------------------------------------------------------------------- requests
    async def submit_upload(self, submission: Submission, upload: IO[bytes], filename: str | None) -> JobInfo:
        """Save an uploaded table and queue a job training on it."""
        name = upload_name(filename)

        def save(folder: Path) -> None:
            save_upload(upload, folder / name, self.settings.max_upload_bytes)
            check_rows(count_rows(folder / name), self.settings.max_training_rows)

        return await self._submit(submission, save, source=name, input_file=name)

    async def submit_series(self, submission: Submission, series: Sequence[SeriesInput]) -> JobInfo:
        """Queue a job training on series sent as JSON (written to the job's folder as a CSV)."""
        check_series(len(series), self.settings.max_training_series)
        check_rows(sum(len(item.values) for item in series), self.settings.max_training_rows)

        def save(folder: Path) -> None:
            write_series(series, folder / SERIES_FILE)

        return await self._submit(submission, save, source=SERIES_SOURCE, input_file=SERIES_FILE)

    async def _submit(
        self, submission: Submission, save: Callable[[Path], None], source: str, input_file: str
    ) -> JobInfo:
        """Save the job's input in its new folder (in a worker thread), then queue it; no folder is left
        behind when either fails."""
        validate_model_name(submission.name)
        job_id = uuid.uuid4().hex
        folder = job_dir(self.models_dir, job_id)
        options = submission.options.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        job = NewJob(job_id, submission.name, options, source, input_file, submission.created_by)
        try:
            await run_blocking(save, folder)
            info = await run_blocking(self.store.create, job)
        except BaseException:
            await run_blocking(remove_folder, folder)
            raise
        self._wake.set()
        return info

    async def get(self, job_id: str) -> JobInfo:
        return await run_blocking(self.store.get, job_id)

    async def newest(
        self,
        limit: int,
        after: tuple[datetime, str] | None,
        model_name: str | None,
        status: JobStatus | None,
    ) -> list[JobInfo]:
        return await run_blocking(self.store.newest, limit, after, model_name, status)

    async def cancel(self, job_id: str) -> JobInfo:
        """Cancel a queued or running job: its worker (here, or on the replica running it, within a heartbeat)
        is killed, and no version is registered for it."""
        job = await run_blocking(self.store.cancel, job_id)
        process = self._workers.get(job_id)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        elif job.started_at is None:  # it never ran: its input goes now
            await run_blocking(remove_input, job_dir(self.models_dir, job_id))
        return job

    # ------------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Fail the jobs a dead server left (before the first request can read them), then schedule."""
        try:
            await run_blocking(self.fail_orphans)
        except Exception:
            logger.exception("could not check for training jobs of stopped servers; retrying while running")
        self._scheduler = asyncio.create_task(self._schedule())

    async def stop(self) -> None:
        """Stop scheduling; kill this server's workers and fail their jobs (a restart does not resume them)."""
        self._stopping = True
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        for process in list(self._workers.values()):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def fail_orphans(self) -> list[str]:
        """Fail the running jobs whose server is gone (see the module's docstring); their ids."""
        stale = {job.id for job in self.store.stale(stale_before(self.settings.job_stale_seconds))}
        failed = []
        for job in self.store.running():
            owner = Owner.parse(job.owner)
            if job.id in self._tasks or owner == self.owner:
                continue
            gone = owner is not None and owner.gone(self.owner)
            if not gone and job.id not in stale:
                continue
            if owner is not None and owner.host == self.owner.host:
                self._kill_orphan(job)
            if self.store.fail(job.id, STOPPED_SERVER):
                logger.warning("training job %s: its server %s is gone; marked failed", job.id, job.owner)
                remove_input(job_dir(self.models_dir, job.id))
                failed.append(job.id)
        return failed

    @staticmethod
    def _kill_orphan(job: JobInfo) -> None:
        """Kill the worker a dead server left behind (if that pid still runs this job's worker)."""
        pid = job.worker_pid
        arguments = None if pid is None else process_arguments(pid)
        if pid is not None and arguments is not None and runner.__name__ in arguments and job.id in arguments:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            logger.warning("training job %s: killed the worker %s its stopped server left", job.id, pid)

    # ------------------------------------------------------------------------------------------- scheduling
    async def _schedule(self) -> None:
        while True:
            try:
                await self._round()
            except Exception:
                logger.exception("training job scheduling failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.job_heartbeat_seconds)
            self._wake.clear()

    async def _round(self) -> None:
        for job_id in await run_blocking(self.store.heartbeat, str(self.owner), list(self._workers)):
            process = self._workers.get(job_id)
            if process is not None:  # cancelled elsewhere, or failed by a server that thought us dead
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await run_blocking(self.fail_orphans)
        free = self.settings.max_training_jobs - len(self._tasks)
        if free <= 0 or self._stopping:
            return
        for job_id in await run_blocking(self.store.queued, free * 4):
            if len(self._tasks) >= self.settings.max_training_jobs:
                break
            if job_dir(self.models_dir, job_id).is_dir() and await run_blocking(
                self.store.claim, job_id, str(self.owner)
            ):
                self._tasks[job_id] = asyncio.create_task(self._supervise(job_id))

    async def _supervise(self, job_id: str) -> None:
        folder = job_dir(self.models_dir, job_id)
        try:
            code = await self._run_worker(job_id, folder)
            # A no-op unless the job is still running: the worker records its own success or failure.
            await run_blocking(self.store.fail, job_id, self._exit_reason(code, folder))
        except Exception as error:
            logger.exception("training job %s could not run", job_id)
            await run_blocking(self.store.fail, job_id, f"the training worker could not start: {error}")
        finally:
            self._workers.pop(job_id, None)
            self._tasks.pop(job_id, None)
            await run_blocking(remove_input, folder)
            self._wake.set()

    def _exit_reason(self, code: int, folder: Path) -> str:
        if self._stopping:
            return STOPPED_SERVER
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"the training worker was killed by {signal.Signals(-code).name} (out of memory?)"
        return f"the training worker exited with code {code}; its log is {folder / LOG_FILE} on the server"

    async def _run_worker(self, job_id: str, folder: Path) -> int:
        with (folder / LOG_FILE).open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                runner.__name__,
                job_id,
                "--parent",
                str(os.getpid()),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._worker_env(),
                start_new_session=True,  # a Ctrl-C at the server's terminal is the server's to handle
            )
        self._workers[job_id] = process
        logger.info("training job %s: worker %s started", job_id, process.pid)
        await run_blocking(self.store.set_worker, job_id, process.pid)
        return await process.wait()

    def _worker_env(self) -> dict[str, str]:
        settings = self.settings
        return {
            **os.environ,
            "TSWATCH_MODELS_DIR": str(self.models_dir),
            "TSWATCH_DATABASE_URL": settings.resolved_database_url,
            "TSWATCH_TORCH_THREADS": str(settings.torch_threads),
            "TSWATCH_MAX_TRAINING_SERIES": str(settings.max_training_series),
        }
