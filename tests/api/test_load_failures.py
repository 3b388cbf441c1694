"""A version that fails verification: answers name the model version, never a path; it is re-read only once
its files change."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.registry.artifacts import MANIFEST_FILE, WEIGHTS_FILE
from app.registry.factory import open_registry

pytestmark = pytest.mark.slow

POLLS = 6  # alias polls (0.5 s each, see tests/conftest.py) the watcher gets to retry a corrupt version


def flip_bytes(path: Path) -> bytes:
    """Corrupt `path` in place (64 bytes in the middle); returns the original content."""
    original = path.read_bytes()
    data = bytearray(original)
    for offset in range(len(data) // 2, len(data) // 2 + 64):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return original


def forecast_body() -> dict[str, object]:
    stamps = pd.date_range("2024-03-01", periods=48, freq="h")
    values = (10 + 3 * np.sin(np.arange(48) / 24 * 2 * np.pi)).tolist()
    return {"series": [{"values": values, "timestamps": [s.isoformat() for s in stamps]}]}


def assert_no_path(text: str, models_dir: Path) -> None:
    for path in {str(models_dir), str(models_dir.resolve())}:
        assert path not in text
    assert not re.search(r"/[\w.-]+/[\w.-]+/(model\.safetensors|manifest\.json)", text), text


def load_outcomes(client: httpx.Client, version: str) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
        if sample.name == "tswatch_model_loads_total"
        and sample.labels.get("model") == "tiny"
        and sample.labels.get("version") == version
    }


def test_answers_name_the_version_and_the_log_has_the_path(models_dir, server_factory):
    """Readiness, forecast, detect, stream and manifest answers for corrupt versions carry no filesystem path."""
    flip_bytes(models_dir / "tiny" / "1" / WEIGHTS_FILE)  # production: fails at start
    flip_bytes(models_dir / "tiny" / "2" / MANIFEST_FILE)
    server = server_factory(models_dir)
    with server.client() as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        problems = ready.json()["checks"]["load_problems"]
        assert "model 'tiny' version 1 failed verification: weights sha256 mismatch" in problems
        assert_no_path(ready.text, models_dir)

        answers = {
            "forecast": client.post("/v1/models/tiny/forecast", json=forecast_body()),
            "detect": client.post("/v1/models/tiny/detect", json=forecast_body()),
            "stream": client.put("/v1/streams/s1", json={"model": "tiny"}),
            "forecast v2": client.post("/v1/models/tiny/forecast?version=2", json=forecast_body()),
            "manifest v2": client.get("/v1/models/tiny/versions/2"),
        }
        for what, response in answers.items():
            assert response.status_code == 503, (what, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert_no_path(response.text, models_dir)
            problem = response.json()
            assert problem["type"] == "urn:tswatch:problem:artifact-integrity"
            version = 2 if what.endswith("v2") else 1
            assert problem["name"] == "tiny" and problem["version"] == version
            assert f"model 'tiny' version {version} failed verification" in problem["detail"]
        assert answers["forecast"].json()["detail"].endswith("weights sha256 mismatch")
        assert answers["forecast v2"].json()["detail"].endswith("manifest sha256 mismatch")

    log = server.log()
    assert f"tiny v1 failed verification: {models_dir / 'tiny' / '1' / WEIGHTS_FILE}" in log
    assert f"tiny v2 failed verification: {models_dir / 'tiny' / '2' / MANIFEST_FILE}" in log


def test_a_corrupt_version_is_read_once_until_its_files_change(models_dir, make_settings, server_factory):
    """The alias watcher does not re-read and re-hash a corrupt version every poll; a repaired one loads."""
    weights = models_dir / "tiny" / "2" / WEIGHTS_FILE
    original = flip_bytes(weights)
    server = server_factory(models_dir)
    registry = open_registry(make_settings(models_dir=models_dir))
    try:
        registry.set_alias("tiny", "production", 2, force=True)  # the tiny models lose to seasonal naive
    finally:
        registry.database.dispose()

    with server.client() as client:
        deadline = time.monotonic() + 15
        while "keeping tiny v1: v2 failed to load" not in server.log():
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.1)
        time.sleep(POLLS * 0.5)
        for _ in range(3):  # explicit requests for it get the remembered answer too
            response = client.post("/v1/models/tiny/forecast?version=2", json=forecast_body())
            assert response.status_code == 503, response.text
        response = client.post("/v1/models/tiny/forecast", json=forecast_body())
        assert response.status_code == 200 and response.json()["model"]["version"] == 1

        log = server.log()
        assert log.count("tiny v2 failed verification") == 1, log[-3000:]  # one read and hash of the files
        assert log.count("v2 failed to load") == 1
        assert load_outcomes(client, "2") == {"failed": 1.0}

        weights.write_bytes(original)  # repaired: the next poll tries again, and it loads
        deadline = time.monotonic() + 15
        while (
            version := client.post("/v1/models/tiny/forecast", json=forecast_body()).json()["model"][
                "version"
            ]
        ) != 2:
            assert time.monotonic() < deadline, f"still serving v{version}:\n{server.log()[-3000:]}"
            time.sleep(0.2)
        assert load_outcomes(client, "2") == {"failed": 1.0, "loaded": 1.0}
        assert client.post("/v1/models/tiny/forecast?version=2", json=forecast_body()).status_code == 200
