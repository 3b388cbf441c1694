"""Model-bound streams through real `tswatch serve` processes: kill -9 right after an acknowledged append, restart
on the same registry, and check that no acknowledged point is lost and that scoring continues exactly as in a
reference server that was never killed (over a second copy of the registry on SQLite, beside the victim on the
same PostgreSQL database: its stream has another id). (Self-learning streams killed in the
middle of an append: tests/streams/test_self_learning_server.py.)"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import hourly_series

pytestmark = pytest.mark.slow

POINTS = 320
SPIKE = 250  # index of the +60 spike (noise sd 0.3, daily amplitude 3)
BEFORE_KILL = [
    (0, 30),
    (30, 160),
    (160, 230),
    (230, SPIKE + 2),
]  # the last batch ends one point after the spike
AFTER_KILL = [(SPIKE + 2, 280), (280, 300), (300, POINTS)]
REFERENCE = "reference"  # the reference server's stream


def series() -> tuple[list[datetime], list[float]]:
    stamps, values = hourly_series(POINTS, seed=7)
    values[SPIKE] += 60.0
    return stamps, [float(value) for value in values]


def iso(stamp: datetime) -> str:
    return stamp.isoformat() + "Z"


def body(start: int, end: int) -> dict[str, Any]:
    stamps, values = series()
    return {"points": [{"timestamp": iso(stamps[i]), "value": values[i]} for i in range(start, end)]}


def post(client: httpx.Client, payload: dict[str, Any], stream: str = "s1") -> dict[str, Any]:
    reply = client.post(f"/v1/streams/{stream}/points", json=payload)
    assert reply.status_code == 200, reply.text
    return reply.json()


def create(client: httpx.Client, stream: str = "s1") -> None:
    # 0.7: the tiny model's calibration sample is small (top score 1 - 1/131), too coarse for the default 0.5
    reply = client.put(
        f"/v1/streams/{stream}", json={"model": "tiny", "sensitivity": 0.7, "learning_points": 20}
    )
    assert reply.status_code == 201, reply.text


def test_kill_9_loses_no_acknowledged_point_and_scores_continue_identically(
    models_dir: Path, tmp_path: Path, server_factory: Callable[..., Any]
) -> None:
    reference_dir = tmp_path / "reference-models"
    shutil.copytree(models_dir, reference_dir)
    stamps, values = series()
    victim = server_factory(models_dir)
    reference = server_factory(reference_dir)
    with victim.client() as client, reference.client() as ref:
        create(client)
        create(ref, REFERENCE)
        acknowledged: list[dict[str, Any]] = []
        for start, end in BEFORE_KILL:
            reply = post(client, body(start, end))
            acknowledged.extend(reply["points"])
            assert (
                reply["points"] == post(ref, body(start, end), REFERENCE)["points"]
            )  # same model, same scores
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL  # right after the acknowledged reply

    assert [point["index"] for point in acknowledged] == list(range(SPIKE + 2))
    spike = acknowledged[SPIKE]
    assert spike["is_anomaly"] and spike["direction"] == "up" and spike["score"] > 0.99
    assert all(point["score"] is None for point in acknowledged[:20])

    restarted = server_factory(models_dir)
    with restarted.client() as client, reference.client() as ref:
        info = client.get("/v1/streams/s1").json()
        assert info["point_count"] == SPIKE + 2 == len(acknowledged)
        assert datetime.fromisoformat(info["last_timestamp"]) == datetime.fromisoformat(
            iso(stamps[SPIKE + 1])
        )
        alarm = info["open_alarm"]  # resolve_after = 3 clean points: still open one point after the spike
        assert alarm is not None and alarm["direction"] == "up"
        assert datetime.fromisoformat(alarm["opened_at"]) == datetime.fromisoformat(iso(stamps[SPIKE]))
        assert alarm == ref.get(f"/v1/streams/{REFERENCE}").json()["open_alarm"]

        # the next points score exactly as on the server that was never killed, repeated and late ones too
        last = {"timestamp": iso(stamps[SPIKE + 1]), "value": values[SPIKE + 1]}
        older = {"timestamp": iso(stamps[50]), "value": 1.0}
        quirks = {"points": [last, older]}
        answered = post(client, quirks)["points"]
        assert answered == post(ref, quirks, REFERENCE)["points"]
        assert [p["sampling"] for p in answered] == ["duplicate", "late"]
        assert [p["index"] for p in answered] == [SPIKE + 2, SPIKE + 3]
        continued: list[dict[str, Any]] = []
        for start, end in AFTER_KILL:
            reply = post(client, body(start, end))
            expected = post(ref, body(start, end), REFERENCE)
            assert reply["points"] == expected["points"]
            assert reply["events"] == expected["events"]
            continued.extend(reply["points"])
        assert [point["index"] for point in continued] == list(range(SPIKE + 4, POINTS + 2))
        assert all(point["score"] is not None for point in continued)

        info = client.get("/v1/streams/s1").json()
        assert info["point_count"] == POINTS + 2 and info["open_alarm"] is None
        episodes = client.get("/v1/streams/s1/anomalies", params={"since": iso(stamps[SPIKE])}).json()
        assert (
            episodes
            == ref.get(f"/v1/streams/{REFERENCE}/anomalies", params={"since": iso(stamps[SPIKE])}).json()
        )
        opened = datetime.fromisoformat(iso(stamps[SPIKE]))
        spike_episode = [ep for ep in episodes if datetime.fromisoformat(ep["opened_at"]) == opened]
        assert len(spike_episode) == 1
        episode = spike_episode[0]
        assert datetime.fromisoformat(episode["peak_timestamp"]) == opened
        assert episode["direction"] == "up" and episode["peak_value"] == values[SPIKE]
        assert episode["resolved_at"] is not None and episode["n_flagged"] >= 1
        resolved = datetime.fromisoformat(episode["resolved_at"])
        assert resolved > datetime.fromisoformat(iso(stamps[SPIKE + 1]))  # resolved after the restart
        assert resolved <= datetime.fromisoformat(info["last_timestamp"])
        after_resolution = (resolved + timedelta(hours=1)).isoformat()
        later = client.get("/v1/streams/s1/anomalies", params={"since": after_resolution}).json()
        assert all(datetime.fromisoformat(ep["opened_at"]) != opened for ep in later)
