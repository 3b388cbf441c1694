"""The streams routes in-process (TestClient): lifecycle and request validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.settings import Settings

from .helpers import hourly_series

pytestmark = pytest.mark.slow


def test_stream_lifecycle_over_http(models_dir: Path) -> None:
    with TestClient(create_app(Settings(models_dir=models_dir))) as client:
        assert client.put("/v1/streams/s1", json={"model": "tiny", "sensitivity": 0.7}).status_code == 201
        stamps, values = hourly_series(60)
        values[40] += 60.0
        body = {
            "points": [
                {"timestamp": s.isoformat() + "Z", "value": float(v)}
                for s, v in zip(stamps, values, strict=True)
            ]
        }
        reply = client.post("/v1/streams/s1/points", json=body)
        assert reply.status_code == 200, reply.text
        data = reply.json()
        assert data["model"] == {"name": "tiny", "version": 1} and len(data["points"]) == 60
        assert data["points"][40]["is_anomaly"] and data["points"][40]["direction"] == "up"
        assert data["points"][0]["score"] is None and data["events"][0]["kind"] == "opened"
        again = client.post("/v1/streams/s1/points", json={"points": body["points"][-1:]})
        assert again.status_code == 409 and "nothing was stored" in again.json()["detail"]
        info = client.get("/v1/streams/s1").json()
        assert info["point_count"] == 60
        assert len(client.get("/v1/streams/s1/anomalies").json()) >= 1
        assert client.delete("/v1/streams/s1").status_code == 204
        assert client.get("/v1/streams/s1").status_code == 404


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_offsets_past_the_calendar_are_422_not_500(models_dir: Path, stamp: str) -> None:
    """Found by the OpenAPI fuzz: converting such a stamp to UTC overflows Python's datetime."""
    with TestClient(create_app(Settings(models_dir=models_dir))) as client:
        assert client.put("/v1/streams/edge", json={"model": "tiny"}).status_code == 201
        reply = client.post("/v1/streams/edge/points", json={"points": [{"timestamp": stamp, "value": 1.0}]})
        assert reply.status_code == 422 and "out of range" in reply.json()["detail"], reply.text
        hook = client.post(
            "/v1/hooks/points", json={"points": [{"stream": "edge", "timestamp": stamp, "value": 1}]}
        )
        assert hook.status_code == 422, hook.text
        episodes = client.get("/v1/streams/edge/anomalies", params={"since": stamp})
        assert episodes.status_code == 200 and episodes.json() == []
        assert client.get("/v1/streams/edge").json()["point_count"] == 0
