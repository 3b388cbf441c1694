"""Training over the API against real servers on 127.0.0.1: uploads and JSON series become forecastable
versions; cancelling and killing the server mid-job register nothing; roles and size limits."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from app.jobs.service import STOPPED_SERVER
from app.jobs.store import JobStore
from app.processes import process_alive
from app.registry.layout import STAGING_PREFIX
from app.storage.database import Database
from tests.conftest import ServerProcess, synthetic_frame

pytestmark = pytest.mark.slow

QUICK = {"window": "24", "horizon": "6", "epochs": "1"}  # one epoch: the job is over in seconds
LONG = {"window": "24", "horizon": "6", "epochs": "5000", "patience": "5000"}  # runs until stopped
PROBLEM = "application/problem+json"


def csv_bytes(points: int = 400, seed: int = 0) -> bytes:
    return synthetic_frame(points=points, seed=seed).to_csv(index=False).encode()


def series_json(series_id: str, points: int = 300, seed: int = 0) -> dict[str, Any]:
    frame = synthetic_frame(points=points, seed=seed)
    return {
        "id": series_id,
        "timestamps": [stamp.isoformat() for stamp in frame["timestamp"]],
        "values": [float(value) for value in frame["value"]],
    }


def upload(client: httpx.Client, model: str, data: bytes, options: dict[str, str], name: str = "load.csv"):
    return client.post(f"/v1/models/{model}/versions", files={"file": (name, data, "text/csv")}, data=options)


def wait_for(
    client: httpx.Client, job_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 240
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job did not get there in time: {job}"
        time.sleep(0.5)


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def training(job: dict[str, Any]) -> bool:
    assert not finished(job), job
    return (job["progress"].get("epoch") or 0) >= 1


def worker_pid(models_dir: Path, database_url: str | None, job_id: str) -> int:
    database = Database(database_url or f"sqlite:///{models_dir.resolve() / 'registry.db'}")
    try:
        pid = JobStore(database).get(job_id).worker_pid
    finally:
        database.dispose()
    assert pid is not None
    return pid


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        assert time.monotonic() < deadline, f"worker {pid} still runs"
        time.sleep(0.2)


def test_an_upload_and_json_series_become_forecastable_versions(tmp_path, server_factory):
    server: ServerProcess = server_factory(tmp_path / "models")
    with server.client() as client:
        posted = upload(client, "load", csv_bytes(), QUICK)
        assert posted.status_code == 202, posted.text
        upload_job = posted.json()
        assert posted.headers["location"] == f"/v1/jobs/{upload_job['id']}"
        assert upload_job["status"] == "queued" and upload_job["source"] == "load.csv"
        assert upload_job["options"] == {"window": 24, "horizon": 6, "epochs": 1}

        body = {
            "series": [series_json("a"), series_json("b", seed=1)],
            "options": {"epochs": 1, "alias": "prod"},
        }
        posted = client.post("/v1/models/fleet/versions", json=body)
        assert posted.status_code == 202, posted.text
        series_job = posted.json()

        page = client.get("/v1/jobs", params={"limit": 1})
        assert [job["id"] for job in page.json()["jobs"]] == [series_job["id"]]  # newest first
        assert 'rel="next"' in page.headers["link"]
        rest = client.get("/v1/jobs", params={"limit": 1, "cursor": page.json()["next_cursor"]}).json()
        assert [job["id"] for job in rest["jobs"]] == [upload_job["id"]] and rest["next_cursor"] is None

        def one_at_a_time(job: dict[str, Any]) -> bool:  # TSWATCH_MAX_TRAINING_JOBS=1: the other waits
            running = client.get("/v1/jobs", params={"status": "running"}).json()["jobs"]
            assert len(running) <= 1, running
            return finished(job)

        done = wait_for(client, upload_job["id"], one_at_a_time)
        assert done["status"] == "succeeded", done
        assert done["model"] == "load" and done["version"] == 1
        assert done["progress"]["phase"] == "done" and done["progress"]["epochs"] == 1
        assert done["metrics"]["metrics"]["mae"] > 0 and "seasonal_naive" in done["metrics"]["baselines"]
        choices = {choice["field"]: choice["source"] for choice in done["metrics"]["training"]["choices"]}
        assert choices["window"] == "user" and choices["hidden"] == "data"
        done_series = wait_for(client, series_job["id"], finished)
        assert done_series["status"] == "succeeded", done_series

        model = client.get("/v1/models/load").json()
        assert model["versions"] == [1]
        recent = {
            key: value[-48:] if isinstance(value, list) else value for key, value in series_json("x").items()
        }
        forecast = client.post("/v1/models/load/forecast", json={"series": [recent]})
        assert forecast.status_code == 200, forecast.text
        assert len(forecast.json()["forecasts"][0]["mean"]) == 6

        assert client.get("/v1/models/fleet").json()["aliases"] == {"prod": 1}
        fleet = client.post("/v1/models/fleet/forecast", json={"series": [series_json("a")]})
        assert fleet.status_code == 200, fleet.text

        refused = client.delete(f"/v1/jobs/{upload_job['id']}")  # nothing left to cancel
        assert refused.status_code == 409 and refused.json()["type"] == "urn:tswatch:problem:job-finished"
    assert not list((tmp_path / "models" / ".jobs" / upload_job["id"]).glob("*.csv"))  # the input is gone


def test_a_cancelled_job_registers_nothing(tmp_path, server_factory, database_url):
    models_dir = tmp_path / "models"
    server: ServerProcess = server_factory(models_dir)
    with server.client() as client:
        job = upload(client, "cancelled", csv_bytes(900), LONG).json()
        wait_for(client, job["id"], training)
        pid = worker_pid(models_dir, database_url, job["id"])
        cancelled = client.delete(f"/v1/jobs/{job['id']}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        wait_gone(pid)
        time.sleep(1)
        after = client.get(f"/v1/jobs/{job['id']}").json()
        assert after["status"] == "cancelled" and after["version"] is None
        assert client.get("/v1/models/cancelled").status_code == 404
        assert client.delete(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"  # idempotent
    assert not list((models_dir / "cancelled").glob(f"{STAGING_PREFIX}*"))


def test_a_server_killed_mid_job_fails_it_at_restart(tmp_path, server_factory, database_url):
    models_dir = tmp_path / "models"
    first: ServerProcess = server_factory(models_dir)
    with first.client() as client:
        job = upload(client, "killed", csv_bytes(900), LONG).json()
        wait_for(client, job["id"], training)
    pid = worker_pid(models_dir, database_url, job["id"])
    first.stop(signal.SIGKILL)
    wait_gone(pid)  # the worker dies with its server

    second: ServerProcess = server_factory(models_dir)
    with second.client() as client:
        after = client.get(f"/v1/jobs/{job['id']}").json()
        assert after["status"] == "failed" and after["error"] == STOPPED_SERVER and after["version"] is None
        assert client.get("/v1/models/killed").status_code == 404
        # the restarted server trains again
        quick = upload(client, "killed", csv_bytes(), QUICK).json()
        assert wait_for(client, quick["id"], finished)["status"] == "succeeded"
    assert "Traceback" not in second.log()


def test_roles_limits_and_clear_failures(tmp_path, server_factory, run_cli):
    models_dir = tmp_path / "models"
    keys = {}
    for role in ("read", "write"):
        created = run_cli(models_dir, "keys", "create", "--role", role, "--json", timeout=120)
        assert created.returncode == 0, created.stderr
        keys[role] = json.loads(created.stdout)["key"]
    limits = {
        "TSWATCH_MAX_UPLOAD_BYTES": str(64 * 1024),
        "TSWATCH_MAX_TRAINING_ROWS": "1000",
        "TSWATCH_MAX_TRAINING_SERIES": "2",
    }
    server: ServerProcess = server_factory(models_dir, **limits)
    with (
        server.client() as anonymous,
        server.client(keys["read"]) as reader,
        server.client(keys["write"]) as writer,
    ):
        assert upload(anonymous, "m", csv_bytes(), QUICK).status_code == 401
        denied = upload(reader, "m", csv_bytes(), QUICK)
        assert denied.status_code == 403 and denied.json()["required_role"] == "write"
        assert reader.get("/v1/jobs").status_code == 200

        def problem(response: httpx.Response, status: int) -> dict[str, Any]:
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == PROBLEM
            return response.json()

        assert problem(upload(writer, "m", csv_bytes(3000), QUICK), 413)["max_body_bytes"] == 64 * 1024
        assert problem(upload(writer, "m", csv_bytes(1200), QUICK), 413)["max_training_rows"] == 1000
        three = {"series": [series_json(name, points=50) for name in "abc"], "options": {"epochs": 1}}
        assert problem(writer.post("/v1/models/m/versions", json=three), 413)["max_training_series"] == 2
        problem(upload(writer, "m", csv_bytes(), {"epochs": "1", "colour": "red"}), 422)
        problem(upload(writer, "m", csv_bytes(), {"epochs": "0"}), 422)
        problem(upload(writer, "m", csv_bytes(), QUICK, name="load.xlsx"), 422)
        problem(upload(writer, "Not A Name", csv_bytes(), QUICK), 422)
        columns = {"series": [series_json("a", points=50)], "options": {"time_col": "ts"}}
        problem(writer.post("/v1/models/m/versions", json=columns), 422)
        problem(
            writer.post("/v1/models/m/versions", content=b"x", headers={"content-type": "text/plain"}), 415
        )
        problem(writer.post("/v1/models/m/versions", files={"other": ("a.csv", b"x")}), 422)
        problem(writer.get("/v1/jobs/0123abcd"), 404)
        problem(writer.get("/v1/jobs", params={"cursor": "nonsense"}), 422)

        wrong = pd.DataFrame({"when": ["2024-01-01"] * 3, "load": [1.0, 2.0, 3.0]}).to_csv(index=False)
        failing = upload(writer, "m", wrong.encode(), QUICK)
        assert failing.status_code == 202
        failed = wait_for(writer, failing.json()["id"], finished)
        assert failed["status"] == "failed" and "timestamp" in failed["error"], failed
        assert "Traceback" not in failed["error"] and str(models_dir) not in failed["error"]
        assert reader.delete(f"/v1/jobs/{failed['id']}").status_code == 403
