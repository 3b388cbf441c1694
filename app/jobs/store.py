"""The `training_jobs` rows: every state change is one conditional UPDATE, so a server, its worker and a
cancelling request (possibly on another replica) can never overwrite each other's verdict: whoever moves a job
out of `running` first wins, and the others see that their update matched no row."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from app.jobs.errors import JobFinishedError, JobNotFoundError
from app.storage.database import Database
from app.storage.tables.jobs import TrainingJobRow
from app.timestamps import utc_now

MAX_ERROR_CHARS: Final = 4000


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class JobInfo:
    id: str
    model_name: str
    status: JobStatus
    options: dict[str, Any]
    source: str
    input_file: str
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    owner: str | None
    worker_pid: int | None
    heartbeat_at: datetime | None
    progress: dict[str, Any]
    metrics: dict[str, Any] | None
    result_version: int | None
    error: str | None

    @classmethod
    def of(cls, row: TrainingJobRow) -> JobInfo:
        return cls(
            id=row.id,
            model_name=row.model_name,
            status=JobStatus(row.status),
            options=json.loads(row.options or "{}"),
            source=row.source,
            input_file=row.input_file,
            created_by=row.created_by,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            owner=row.owner,
            worker_pid=row.worker_pid,
            heartbeat_at=row.heartbeat_at,
            progress=json.loads(row.progress or "{}"),
            metrics=None if row.metrics is None else json.loads(row.metrics),
            result_version=row.result_version,
            error=row.error,
        )


@dataclass(frozen=True)
class NewJob:
    id: str
    model_name: str
    options: Mapping[str, Any]
    source: str
    input_file: str
    created_by: str | None


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), allow_nan=False, separators=(",", ":"))


def _matched(result: Any) -> bool:
    assert isinstance(result, CursorResult)
    return bool(result.rowcount == 1)


def _running(job_id: str) -> Any:
    return and_(TrainingJobRow.id == job_id, TrainingJobRow.status == JobStatus.RUNNING.value)


class JobStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def create(self, job: NewJob) -> JobInfo:
        row = TrainingJobRow(
            id=job.id,
            model_name=job.model_name,
            status=JobStatus.QUEUED.value,
            options=_json(job.options),
            source=job.source[:256],
            input_file=job.input_file,
            created_by=job.created_by,
            created_at=utc_now(),
            progress=_json({"phase": "queued"}),
        )
        with self.database.session() as session:
            session.add(row)
        return JobInfo.of(row)

    def get(self, job_id: str) -> JobInfo:
        with self.database.session() as session:
            row = session.get(TrainingJobRow, job_id)
            if row is None:
                raise JobNotFoundError(f"no training job {job_id!r}", fields={"job_id": job_id})
            return JobInfo.of(row)

    def newest(
        self,
        limit: int,
        after: tuple[datetime, str] | None = None,
        model_name: str | None = None,
        status: JobStatus | None = None,
    ) -> list[JobInfo]:
        """Newest first (then by id): those after `after` (the (created_at, id) of a page's last job)."""
        query = select(TrainingJobRow)
        if after is not None:
            created_at, job_id = after
            query = query.where(
                or_(
                    TrainingJobRow.created_at < created_at,
                    and_(TrainingJobRow.created_at == created_at, TrainingJobRow.id > job_id),
                )
            )
        if model_name is not None:
            query = query.where(TrainingJobRow.model_name == model_name)
        if status is not None:
            query = query.where(TrainingJobRow.status == status.value)
        query = query.order_by(TrainingJobRow.created_at.desc(), TrainingJobRow.id).limit(limit)
        with self.database.session() as session:
            return [JobInfo.of(row) for row in session.scalars(query)]

    def queued(self, limit: int) -> list[str]:
        """The ids of the oldest queued jobs."""
        query = (
            select(TrainingJobRow.id)
            .where(TrainingJobRow.status == JobStatus.QUEUED.value)
            .order_by(TrainingJobRow.created_at, TrainingJobRow.id)
            .limit(limit)
        )
        with self.database.session() as session:
            return list(session.scalars(query))

    def running(self) -> list[JobInfo]:
        with self.database.session() as session:
            rows = session.scalars(
                select(TrainingJobRow).where(TrainingJobRow.status == JobStatus.RUNNING.value)
            )
            return [JobInfo.of(row) for row in rows]

    def claim(self, job_id: str, owner: str) -> bool:
        """Move a queued job to running under `owner`; False when another server (or a cancel) was first."""
        now = utc_now()
        statement = (
            update(TrainingJobRow)
            .where(TrainingJobRow.id == job_id, TrainingJobRow.status == JobStatus.QUEUED.value)
            .values(
                status=JobStatus.RUNNING.value,
                owner=owner,
                started_at=now,
                heartbeat_at=now,
                progress=_json({"phase": "starting"}),
            )
        )
        with self.database.session() as session:
            return _matched(session.execute(statement))

    def set_worker(self, job_id: str, pid: int) -> None:
        with self.database.session() as session:
            session.execute(update(TrainingJobRow).where(_running(job_id)).values(worker_pid=pid))

    def heartbeat(self, owner: str, job_ids: Sequence[str]) -> set[str]:
        """Refresh the heartbeat of `owner`'s running jobs among `job_ids`; the ids that are no longer running
        under `owner` (cancelled, or failed by another server) are returned: their workers must stop."""
        if not job_ids:
            return set()
        mine = and_(TrainingJobRow.id.in_(list(job_ids)), TrainingJobRow.owner == owner)
        with self.database.session() as session:
            session.execute(
                update(TrainingJobRow)
                .where(mine, TrainingJobRow.status == JobStatus.RUNNING.value)
                .values(heartbeat_at=utc_now())
            )
            alive = set(
                session.scalars(
                    select(TrainingJobRow.id).where(mine, TrainingJobRow.status == JobStatus.RUNNING.value)
                )
            )
        return set(job_ids) - alive

    def report_progress(self, job_id: str, progress: Mapping[str, Any]) -> bool:
        """Record a running job's progress; False when the job is no longer running (its worker must stop)."""
        statement = update(TrainingJobRow).where(_running(job_id)).values(progress=_json(progress))
        with self.database.session() as session:
            return _matched(session.execute(statement))

    def succeed_in(self, session: Session, job_id: str, version: int, metrics: Mapping[str, Any]) -> bool:
        """In the transaction that registers the job's version: mark it succeeded if it is still running."""
        progress = session.scalar(select(TrainingJobRow.progress).where(TrainingJobRow.id == job_id))
        statement = (
            update(TrainingJobRow)
            .where(_running(job_id))
            .values(
                status=JobStatus.SUCCEEDED.value,
                result_version=version,
                metrics=_json(metrics),
                finished_at=utc_now(),
                progress=_json({**json.loads(progress or "{}"), "phase": "done"}),
            )
        )
        return _matched(session.execute(statement))

    def add_metrics(self, job_id: str, metrics: Mapping[str, Any]) -> None:
        """Complete a succeeded job's metrics (training summary, configuration) after its version is in."""
        with self.database.session() as session:
            row = session.get(TrainingJobRow, job_id)
            if row is not None and row.status == JobStatus.SUCCEEDED.value:
                row.metrics = _json({**json.loads(row.metrics or "{}"), **metrics})

    def fail(self, job_id: str, error: str) -> bool:
        """Mark a running job failed with `error`; False when it was no longer running."""
        statement = (
            update(TrainingJobRow)
            .where(_running(job_id))
            .values(status=JobStatus.FAILED.value, error=error[:MAX_ERROR_CHARS], finished_at=utc_now())
        )
        with self.database.session() as session:
            return _matched(session.execute(statement))

    def cancel(self, job_id: str) -> JobInfo:
        """Cancel a queued or running job (a cancelled one stays cancelled); JobFinishedError for a job that
        already succeeded or failed."""
        active = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
        statement = (
            update(TrainingJobRow)
            .where(TrainingJobRow.id == job_id, TrainingJobRow.status.in_(active))
            .values(status=JobStatus.CANCELLED.value, finished_at=utc_now())
        )
        with self.database.session() as session:
            session.execute(statement)
        job = self.get(job_id)
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            raise JobFinishedError(
                f"training job {job_id} already {job.status.value}; nothing to cancel",
                fields={"job_id": job_id, "status": job.status.value},
            )
        return job

    def stale(self, before: datetime) -> list[JobInfo]:
        """Running jobs whose owner has not refreshed their heartbeat since `before`."""
        query = select(TrainingJobRow).where(
            TrainingJobRow.status == JobStatus.RUNNING.value,
            or_(TrainingJobRow.heartbeat_at.is_(None), TrainingJobRow.heartbeat_at < before),
        )
        with self.database.session() as session:
            return [JobInfo.of(row) for row in session.scalars(query)]


def stale_before(seconds: float) -> datetime:
    return utc_now() - timedelta(seconds=seconds)
