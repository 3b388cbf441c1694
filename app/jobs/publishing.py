"""The registry a worker publishes through: the version row and "job succeeded" commit in one transaction.

`Registry.publish` inserts the version's rows in one transaction (its commit point). Here that transaction also
moves the job from running to succeeded, conditionally: when the job was cancelled, or failed by a server that
found its owner dead, meanwhile, the update matches no row, `JobStoppedError` rolls the whole transaction back
and the staging folder is discarded by `publish` itself. So a job is succeeded exactly when its version exists,
and a cancelled or failed job never leaves a version behind, however the worker and the canceller interleave.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.jobs.errors import JobStoppedError
from app.jobs.store import JobStore
from app.registry.manifest import VersionSummary
from app.registry.store import Registry
from app.storage.tables.registry import VersionRow


def job_registry(registry: Registry, jobs: JobStore, job_id: str) -> Registry:
    """`registry`, whose publishes succeed the job `job_id` in the same transaction, or do not happen."""

    def succeed_job(session: Session, row: VersionRow, summary: VersionSummary) -> None:
        metrics = summary.model_dump(mode="json", exclude_none=True)
        if not jobs.succeed_in(session, job_id, row.version, metrics):
            raise JobStoppedError(f"job {job_id} stopped before its version was registered")

    return registry.with_publish_hook(succeed_job)
