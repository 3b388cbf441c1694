"""Alias hot swap under load: moving `production` never fails a request, and a broken version never serves."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.registry.artifacts import WEIGHTS_FILE
from app.registry.factory import open_registry
from app.settings import Settings

pytestmark = pytest.mark.slow

CLIENTS = 4
# The clients run until the test stops them. This only bounds a runaway test: it must not be a budget for the
# phases, which include two `tswatch` CLI runs (each a new Python importing torch: 5-20 s on a busy 2-core
# machine). A 40 s budget ran out before the last phase under load, and the server looked hung.
RUNAWAY_SECONDS = 600.0


def publish_copy(settings: Settings, name: str, version: int) -> int:
    """Register a new version holding `version`'s network (a real publish: artifact folder plus database row)."""
    registry = open_registry(settings)
    info = registry.get_version(name, version)
    loaded = registry.load(info)
    manifest = loaded.manifest.model_copy(update={"version": None, "weights": None})
    return registry.publish(name, loaded.forecaster.network.state_dict(), manifest).version


def corrupt(path) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 64):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@dataclass
class Load:
    """Clients sending forecasts continuously; every outcome is recorded with the time it arrived."""

    base_url: str
    body: dict
    stop: threading.Event = field(default_factory=threading.Event)
    outcomes: list[tuple[float, int | str, int | None]] = field(
        default_factory=list
    )  # (time, status, version)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        deadline = time.monotonic() + RUNAWAY_SECONDS
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    response = client.post("/v1/models/tiny/forecast", json=self.body)
                    version = response.json()["model"]["version"] if response.status_code == 200 else None
                    outcome = (time.monotonic(), response.status_code, version)
                except Exception as error:  # a dropped connection is a failure too
                    outcome = (time.monotonic(), f"{type(error).__name__}: {error}", None)
                with self.lock:
                    self.outcomes.append(outcome)
                time.sleep(0.01)  # leave some CPU to the CLI processes

    def since(self, moment: float) -> list[tuple[float, int | str, int | None]]:
        with self.lock:
            return [outcome for outcome in self.outcomes if outcome[0] >= moment]

    def wait_for(self, count: int, after: float, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.since(after)) < count:
            assert time.monotonic() < deadline, "the clients got no answers"
            time.sleep(0.05)

    def failures(self) -> Counter:
        with self.lock:
            return Counter(outcome[1] for outcome in self.outcomes if outcome[1] != 200)


def test_alias_moves_under_load_and_a_corrupt_version_never_serves(
    models_dir, make_settings, server_factory, run_cli
):
    # v3 is published up front (so the load phase stays short) and broken: its weights no longer match.
    assert publish_copy(make_settings(models_dir=models_dir), "tiny", 2) == 3
    corrupt(models_dir / "tiny" / "3" / WEIGHTS_FILE)

    server = server_factory(models_dir)
    stamps = pd.date_range("2024-03-01", periods=48, freq="h")
    series = {
        "values": (10 + 3 * np.sin(np.arange(48) / 24 * 2 * np.pi)).tolist(),
        "timestamps": [s.isoformat() for s in stamps],
    }
    load = Load(server.base_url, {"series": [series]})
    threads = [threading.Thread(target=load.run, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        load.wait_for(20, after=0)
        assert {version for _, _, version in load.since(0)} == {1}

        # Move production 1 -> 2 from another process; within seconds every answer comes from v2.
        result = run_cli(models_dir, "models", "alias", "tiny", "production", "2", "--force", timeout=120)
        assert result.returncode == 0, result.stderr
        moved = time.monotonic()
        deadline = moved + 5
        while not (recent := load.since(time.monotonic() - 0.3)) or {v for _, _, v in recent} != {2}:
            assert time.monotonic() < deadline, f"still not serving v2 5 s after the move: {recent[-5:]}"
            time.sleep(0.1)
        switched = time.monotonic()
        load.wait_for(20, after=switched)
        assert {version for _, _, version in load.since(switched)} == {2}  # and it does not flap back

        # Move production to the corrupt v3: the server tries, fails, and keeps answering with v2.
        result = run_cli(models_dir, "models", "alias", "tiny", "production", "3", "--force", timeout=120)
        assert result.returncode == 0, result.stderr
        moved = time.monotonic()
        deadline = moved + 10
        while "failed to load" not in server.log():
            assert time.monotonic() < deadline, f"no failed load in the log:\n{server.log()[-3000:]}"
            time.sleep(0.1)
        time.sleep(1.5)  # several more poll intervals: none re-reads v3 (remembered until its files change)
        load.wait_for(10, after=moved)
        after = load.since(moved)
        assert {version for _, _, version in after} == {2}
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(35)
    assert not any(thread.is_alive() for thread in threads)
    assert not load.failures(), f"failed requests: {load.failures()}"
    assert len(load.outcomes) >= 60

    log = server.log()
    assert "keeping tiny v2: v3 failed to load" in log
    assert "sha256" in log  # the reason: the weights no longer match their recorded digest
    assert log.count("tiny v3 failed verification") == 1  # read and hashed once, not on every poll
    assert "now serving tiny v2" in log and "now serving tiny v3" not in log
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert {"name": "tiny", "version": 3} not in ready.json()["models"]
        # Asking for v3 explicitly is a 503 problem, not a crash.
        response = client.post("/v1/models/tiny/forecast?version=3", json={"series": [series]})
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["version"] == 3 and str(models_dir) not in response.text
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            for sample in family.samples
        }
    loads = "tswatch_model_loads_total"
    assert samples[(loads, frozenset({"model": "tiny", "version": "2", "outcome": "loaded"}.items()))] == 1
    assert samples[(loads, frozenset({"model": "tiny", "version": "3", "outcome": "failed"}.items()))] == 1
    assert (loads, frozenset({"model": "tiny", "version": "3", "outcome": "loaded"}.items())) not in samples
