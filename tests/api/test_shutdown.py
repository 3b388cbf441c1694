"""Graceful shutdown: on SIGTERM the server stops accepting, finishes what is in flight, and exits 0."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

GRACE_SECONDS = 8.0  # Settings.shutdown_grace_seconds default


def hourly(n: int, series_id: str, start: str = "2000-01-01") -> dict:
    stamps = pd.date_range(start, periods=n, freq="h")
    values = 10.0 + 3.0 * np.sin(2 * np.pi * np.arange(n) / 24)
    return {
        "id": series_id,
        "values": values.round(4).tolist(),
        "timestamps": [s.isoformat() for s in stamps],
    }


def test_sigterm_lets_in_flight_requests_finish_then_exits_zero(tiny_registry_dir, server_factory):
    server = server_factory(tiny_registry_dir)
    # seconds of scoring (the model-less detector: the model route steps the network per reading, minutes)
    detect_body = {"series": [hourly(4_000, "long-a"), hourly(4_000, "long-b")]}
    outcome: list[httpx.Response | Exception] = []

    def detect() -> None:
        try:
            with server.client(timeout=60) as client:
                outcome.append(client.post("/v1/detect", json=detect_body))
        except Exception as error:
            outcome.append(error)

    # An idle keep-alive connection must not hold the shutdown up.
    idle = server.client()
    assert idle.post("/v1/models/tiny/forecast", json={"series": [hourly(48, "short")]}).status_code == 200

    thread = threading.Thread(target=detect)
    thread.start()
    time.sleep(1.0)  # uploaded, parsed, and running on the inference thread
    assert thread.is_alive(), "the detection finished before SIGTERM: make it slower"

    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(httpx.TransportError):  # no new connections once shutting down
        httpx.get(f"{server.base_url}/healthz", timeout=2)

    thread.join(GRACE_SECONDS + 5)
    assert not thread.is_alive()
    idle.close()
    [response] = outcome
    assert isinstance(response, httpx.Response), f"the in-flight request failed: {response!r}"
    assert response.status_code == 200, response.text[:300]
    assert [len(result["points"]) for result in response.json()["results"]] == [4_000, 4_000]

    try:
        returncode = server.process.wait(GRACE_SECONDS + 5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not exit within the grace period:\n{server.log()[-3000:]}")
    elapsed = time.monotonic() - signalled
    log = server.log()
    assert returncode == 0, f"exit code {returncode} after SIGTERM:\n{log[-2000:]}"
    assert elapsed < GRACE_SECONDS + 2
    for line in ("Shutting down", "Waiting for application shutdown", "Application shutdown complete"):
        assert line in log, line
    assert "Traceback" not in log and "ERROR" not in log
