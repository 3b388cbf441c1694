"""Issue 13 item 2: one `/detect` request must not monopolise the server.

Against real servers: past `TSWATCH_MAX_DETECT_POINTS` a request is refused (413) before any scoring, on both
detect routes; a 200,000-point detection leaves a concurrent stream append answering first; and, in a fresh
interpreter, the same detection through the real app grows peak RSS by less than 200 MB (timings are in
bench/detect.py). The 200,000-point detections use the model-less route: the model route steps the network once
per reading (`ModelForecasts`), minutes for 200,000 points on this machine, on the same detection thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
START = datetime(2024, 1, 1)
BIG = 200_000
ANOMALY_METRIC = 'tswatch_anomalies_total{model="tiny",version="1"}'


def series(points: int, name: str = "big", offset: int = 0) -> dict[str, Any]:
    hours = np.arange(offset, offset + points)
    values = 10.0 + 3.0 * np.sin(2 * np.pi * hours / 24) + np.random.default_rng(0).normal(0, 0.3, points)
    stamps = [(START + timedelta(hours=int(h))).isoformat() for h in hours]
    return {"id": name, "values": values.tolist(), "timestamps": stamps}


def test_over_the_cap_answers_413_before_any_scoring(models_dir: Path, server_factory) -> None:
    server = server_factory(models_dir, TSWATCH_MAX_DETECT_POINTS="1000")
    with server.client() as client:
        body = {"series": [series(600, "a"), series(600, "b")]}
        reply = client.post("/v1/models/tiny/detect", json=body)
        assert reply.status_code == 413, reply.text
        assert reply.headers["content-type"].startswith("application/problem+json")
        problem = reply.json()
        assert problem["status"] == 413 and "1200" in problem["detail"] and "1000" in problem["detail"]
        assert "TSWATCH_MAX_DETECT_POINTS" in problem["detail"]
        assert ANOMALY_METRIC not in client.get("/metrics").text  # nothing was scored
        assert client.post("/v1/detect", json=body).status_code == 413
        assert client.post("/v1/models/tiny/detect", json={"series": [series(1000)]}).status_code == 200
        assert ANOMALY_METRIC in client.get("/metrics").text  # (the marker does show scoring)


def test_stream_appends_keep_answering_while_a_big_detection_runs(models_dir: Path, server_factory) -> None:
    """Single-point appends, one after another, for as long as a 200,000-point detection is in flight: each is
    scored correctly, and none waits for the detection (the longest wait stays a small part of its time;
    sharing one thread, an append waits out the whole scoring: most of the detection's time)."""
    server = server_factory(models_dir, TSWATCH_MAX_BODY_BYTES=str(64 * 1024 * 1024))
    payload = json.dumps({"series": [series(BIG)]}).encode()
    stamps, values = _points(2_000)
    with server.client(timeout=600) as client:
        assert client.put("/v1/streams/s1", json={"model": "tiny"}).status_code == 201
        learned = 120  # past the stream detector's learning period (100 readings): appends are scored
        history = [
            {"timestamp": s, "value": v} for s, v in zip(stamps[:learned], values[:learned], strict=True)
        ]
        assert client.post("/v1/streams/s1/points", json={"points": history}).status_code == 200
        detected: dict[str, Any] = {}

        def detect() -> None:
            reply = client.post("/v1/detect", content=payload, headers={"content-type": "application/json"})
            detected.update(status=reply.status_code, finished=time.monotonic(), body=reply.content)

        worker = threading.Thread(target=detect)
        began = time.monotonic()
        worker.start()
        waits: list[tuple[float, float]] = []  # (finished, seconds) per append
        try:
            with server.client() as other:
                for index in range(learned, len(stamps)):
                    if not worker.is_alive():
                        break
                    sent = time.monotonic()
                    point = {"timestamp": stamps[index], "value": values[index]}
                    reply = other.post("/v1/streams/s1/points", json={"points": [point]})
                    waits.append((time.monotonic(), time.monotonic() - sent))
                    assert reply.status_code == 200, reply.text
                    scored = reply.json()["points"][0]
                    assert scored["value"] == values[index] and scored["score"] is not None
                    time.sleep(0.05)
        finally:
            worker.join(600)
        assert detected["status"] == 200
        assert len(json.loads(detected["body"])["results"][0]["points"]) == BIG
        duration = detected["finished"] - began
        during = [seconds for finished, seconds in waits if finished < detected["finished"]]
        assert len(during) >= 3, "the appends did not run alongside the detection"
        assert max(during) < duration / 4, (
            f"an append waited {max(during):.1f} s of a {duration:.1f} s detection"
        )


def _points(count: int) -> tuple[list[str], list[float]]:
    data = series(count, "s")
    return data["timestamps"], data["values"]


@pytest.mark.slow
def test_a_big_detection_grows_peak_rss_by_less_than_200_mb(tiny_models_dir: Path) -> None:
    probe = Path(__file__).with_name("detect_memory_probe.py")
    done = subprocess.run(
        [sys.executable, str(probe), str(tiny_models_dir), str(BIG)],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("TSWATCH_")},
            "TSWATCH_TORCH_THREADS": "1",
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 200 and result["points"] == BIG
    assert result["peak_growth_mb"] < 200, result
