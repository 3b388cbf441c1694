"""Training-job rows and their rules, on the real database of each backend: exclusive claims, cancels, the
publish guard (a stopped job registers nothing), orphaned jobs of dead servers, listing order."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from safetensors.torch import load_file

from app.jobs.errors import JobFinishedError, JobNotFoundError, JobStoppedError
from app.jobs.inputs import count_rows, job_dir, upload_name
from app.jobs.publishing import job_registry
from app.jobs.service import STOPPED_SERVER, JobService, Owner
from app.jobs.store import JobStatus, JobStore, NewJob
from app.registry.artifacts import WEIGHTS_FILE
from app.registry.factory import open_registry
from app.registry.layout import STAGING_PREFIX
from app.registry.store import ModelNotFoundError
from app.settings import Settings
from app.storage.tables.jobs import TrainingJobRow
from app.timestamps import utc_now


def new_job(store: JobStore, job_id: str, model: str = "m") -> None:
    store.create(NewJob(job_id, model, {"epochs": 1}, "data.csv", "data.csv", None))


def test_a_queued_job_is_claimed_once_and_its_progress_stops_with_a_cancel(database):
    store = JobStore(database)
    new_job(store, "a1")
    assert store.queued(10) == ["a1"]
    assert store.claim("a1", "host:1:x") and not store.claim("a1", "host:2:y")
    assert store.report_progress("a1", {"phase": "training", "epoch": 1})
    assert store.get("a1").progress == {"phase": "training", "epoch": 1}
    assert store.cancel("a1").status is JobStatus.CANCELLED
    assert store.cancel("a1").status is JobStatus.CANCELLED  # again: answered, unchanged
    assert not store.report_progress("a1", {"phase": "training", "epoch": 2})  # the worker must stop
    assert not store.fail("a1", "late failure")  # a cancel is final
    assert store.get("a1").error is None and store.get("a1").finished_at is not None


def test_a_finished_job_cannot_be_cancelled_and_an_unknown_one_is_not_found(database):
    store = JobStore(database)
    new_job(store, "b1")
    store.claim("b1", "host:1:x")
    assert store.fail("b1", "bad data")
    with pytest.raises(JobFinishedError) as raised:
        store.cancel("b1")
    assert raised.value.status == 409
    with pytest.raises(JobNotFoundError):
        store.get("nope")


def test_jobs_are_listed_newest_first_a_page_at_a_time(database):
    store = JobStore(database)
    for index in range(5):
        new_job(store, f"c{index}", model="x" if index % 2 else "y")
    with database.session() as session:  # distinct, known creation times
        for index in range(5):
            row = session.get(TrainingJobRow, f"c{index}")
            assert row is not None
            row.created_at = utc_now() - timedelta(minutes=10 - index)
    first = store.newest(2)
    assert [job.id for job in first] == ["c4", "c3"]
    rest = store.newest(10, after=(first[-1].created_at, first[-1].id))
    assert [job.id for job in rest] == ["c2", "c1", "c0"]
    assert [job.id for job in store.newest(10, model_name="x")] == ["c3", "c1"]
    store.claim("c0", "host:1:x")
    assert [job.id for job in store.newest(10, status=JobStatus.RUNNING)] == ["c0"]


def _published_parts(tiny_registry_dir: Path, database_url: str | None):
    source = open_registry(Settings(models_dir=tiny_registry_dir, database_url=database_url))
    try:
        info = source.resolve("tiny")
        manifest = source.read_manifest(info)
        return load_file(info.path / WEIGHTS_FILE), manifest
    finally:
        source.database.dispose()


def test_the_version_of_a_stopped_job_is_never_registered(models_dir, database_url):
    tensors, manifest = _published_parts(models_dir, database_url)
    registry = open_registry(Settings(models_dir=models_dir, database_url=database_url))
    try:
        store = JobStore(registry.database)
        new_job(store, "d1", model="trained")
        store.claim("d1", "host:1:x")
        store.cancel("d1")
        with pytest.raises(JobStoppedError):
            job_registry(registry, store, "d1").publish("trained", tensors, manifest, alias="staging")
        with pytest.raises(ModelNotFoundError):
            registry.versions("trained")
        assert not list((models_dir / "trained").glob(f"{STAGING_PREFIX}*"))  # the staging folder went too

        new_job(store, "d2", model="trained")
        store.claim("d2", "host:1:x")
        version = job_registry(registry, store, "d2").publish("trained", tensors, manifest)
        job = store.get("d2")
        assert job.status is JobStatus.SUCCEEDED and job.result_version == version.version
        assert job.metrics is not None and "mae" in job.metrics["metrics"]
    finally:
        registry.database.dispose()


def test_running_jobs_of_a_dead_server_are_failed_and_its_worker_killed(tmp_path, database, database_url):
    settings = Settings(models_dir=tmp_path, database_url=database_url, job_stale_seconds=60)
    service = JobService(settings, database)
    store = service.store
    me = service.owner
    # A dead server on this host, with a worker it left behind (a process naming the runner and the job).
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan_worker = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "app.jobs.runner", "e1"]
    )
    for job_id, owner in [
        ("e1", Owner(me.host, dead.pid, "old")),  # dead server, same host
        ("e2", Owner(me.host, me.pid, "old")),  # this very process before a restart (same pid)
        ("e3", Owner("elsewhere", 1, "live")),  # a live replica on another host, fresh heartbeat
        ("e4", Owner("elsewhere", 2, "dead")),  # a replica whose heartbeat is stale
        ("e5", Owner(me.host, os.getppid(), "other")),  # another live server on this host
    ]:
        new_job(store, job_id)
        store.claim(job_id, str(owner))
    store.set_worker("e1", orphan_worker.pid)
    with database.session() as session:
        row = session.get(TrainingJobRow, "e4")
        assert row is not None
        row.heartbeat_at = utc_now() - timedelta(seconds=120)
    assert sorted(service.fail_orphans()) == ["e1", "e2", "e4"]
    assert orphan_worker.wait(10) == -9
    assert store.get("e1").error == STOPPED_SERVER
    assert {job.id for job in store.running()} == {"e3", "e5"}


def test_upload_names_are_made_safe_and_rows_are_counted(tmp_path):
    assert upload_name("../../etc/My Data.csv") == "My_Data.csv"
    assert upload_name(None) == "upload.csv"
    with pytest.raises(Exception, match="not a table"):
        upload_name("data.xlsx")
    table = tmp_path / "t.csv"
    table.write_text("timestamp,value\n2024-01-01,1\n2024-01-02,2")  # no final newline
    assert count_rows(table) == 2
    assert job_dir(tmp_path, "abc") == tmp_path / ".jobs" / "abc"
