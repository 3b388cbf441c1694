"""Forecasts computed by the inference worker process, through real servers: same answers, survives its death."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SERIES = [
    {
        "id": f"s{k}",
        "values": (10 + 3 * np.sin(np.arange(48) / 3.8 + k)).round(3).tolist(),
        "timestamps": [f"2024-03-0{1 + k}T{h % 24:02d}:00:00" for h in range(24)]
        + [f"2024-03-0{2 + k}T{h:02d}:00:00" for h in range(24)],
    }
    for k in range(3)
]


def children(pid: int) -> list[int]:
    """The server's inference worker processes (it also has a /detect body parser child, not counted here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == pid and b"app.api.inference_worker" in command:
                found.append(int(entry.name))
    return found


def wait_for(condition, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


def forecast(server) -> dict:  # type: ignore[no-untyped-def]
    with server.client() as client:
        response = client.post("/v1/models/tiny/forecast", json={"series": SERIES, "horizon": 4})
    assert response.status_code == 200, response.text
    return response.json()


def test_worker_and_in_process_inference_give_the_same_forecasts(tiny_registry_dir, server_factory):
    in_worker = forecast(server_factory(tiny_registry_dir))
    in_thread = forecast(server_factory(tiny_registry_dir, TSWATCH_INFERENCE_PROCESS="false"))
    assert in_worker["model"] == in_thread["model"]
    for a, b in zip(in_worker["forecasts"], in_thread["forecasts"], strict=True):
        assert a["timestamps"] == b["timestamps"]
        np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-5, atol=1e-6)
        for x, y in zip(a["intervals"], b["intervals"], strict=True):
            np.testing.assert_allclose(
                [x["lower"], x["upper"]], [y["lower"], y["upper"]], rtol=1e-5, atol=1e-6
            )


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(tiny_registry_dir, server_factory):
    server = server_factory(tiny_registry_dir)
    before = forecast(server)
    (worker,) = wait_for(lambda: children(server.process.pid))
    os.kill(worker, signal.SIGKILL)
    with server.client() as client:
        # While the worker restarts, a forecast is a 503 problem or already served again: never a 500.
        response = client.post("/v1/models/tiny/forecast", json={"series": SERIES, "horizon": 4})
        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            assert response.headers["content-type"] == "application/problem+json"
            assert "inference worker" in response.json()["detail"]
        # Detection runs on the server's own inference thread and is unaffected.
        detect = client.post("/v1/models/tiny/detect", json={"series": SERIES[:1], "learning_points": 20})
        assert detect.status_code == 200, detect.text
    (replacement,) = wait_for(lambda: [pid for pid in children(server.process.pid) if pid != worker])

    def answered() -> dict | None:
        with server.client() as client:
            response = client.post("/v1/models/tiny/forecast", json={"series": SERIES, "horizon": 4})
        return response.json() if response.status_code == 200 else None

    assert wait_for(answered)["forecasts"] == before["forecasts"]
    with server.client() as client:
        assert "tswatch_inference_worker_restarts_total 1.0" in client.get("/metrics").text
    assert "inference worker" in server.log() and "restarted" in server.log()
    assert server.stop() == 0
    wait_for(lambda: not Path(f"/proc/{replacement}").exists())  # the worker never outlives the server
