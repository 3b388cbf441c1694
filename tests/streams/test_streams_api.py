"""The streams routes in-process (TestClient): lifecycle and request validation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.settings import Settings

from .helpers import hourly_series

pytestmark = pytest.mark.slow


def test_stream_lifecycle_over_http(models_dir: Path, make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(models_dir=models_dir))) as client:
        config = {"model": "tiny", "sensitivity": 0.7, "learning_points": 20}
        assert client.put("/v1/streams/s1", json=config).status_code == 201
        stamps, values = hourly_series(300)
        values[250] += 60.0
        body = {
            "points": [
                {"timestamp": s.isoformat() + "Z", "value": float(v)}
                for s, v in zip(stamps, values, strict=True)
            ]
        }
        reply = client.post("/v1/streams/s1/points", json=body)
        assert reply.status_code == 200, reply.text
        data = reply.json()
        assert data["model"] == {"name": "tiny", "version": 1} and len(data["points"]) == 300
        assert data["state"] == "scoring" and data["points_until_ready"] == 0
        flagged = [point for point in data["points"] if point["is_anomaly"]]
        assert flagged and all(point["direction"] in ("up", "down") for point in flagged)
        assert data["points"][0]["score"] is None and data["points"][0]["sampling"] == "regular"
        assert any(event["kind"] == "opened" for event in data["events"])
        again = client.post("/v1/streams/s1/points", json={"points": body["points"][-1:]})
        assert again.status_code == 200, again.text  # a repeated reading is input, not an error
        [repeated] = again.json()["points"]
        assert repeated["sampling"] == "duplicate" and repeated["score"] is None and repeated["index"] == 300
        missing = {"timestamp": (stamps[-1] + timedelta(hours=1)).isoformat() + "Z", "value": None}
        [gap] = client.post("/v1/streams/s1/points", json={"points": [missing]}).json()["points"]
        assert gap["sampling"] == "missing" and gap["value"] is None and gap["index"] == 301
        info = client.get("/v1/streams/s1").json()
        assert info["point_count"] == 302 and info["model"] == "tiny" and info["learning_points"] == 20
        assert len(client.get("/v1/streams/s1/anomalies").json()) >= 1
        assert client.delete("/v1/streams/s1").status_code == 204
        assert client.get("/v1/streams/s1").status_code == 404


def test_stream_settings_are_validated(models_dir: Path, make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(models_dir=models_dir))) as client:
        for body, field in (
            ({"learning_points": 10}, "learning_points"),
            ({"learning_points": 10_001}, "learning_points"),
            ({"alias": "production"}, "alias"),
            ({"model": "tiny", "alerts": "no"}, "alerts"),
        ):
            reply = client.put("/v1/streams/v", json=body)
            assert reply.status_code == 422, (body, reply.text)
            assert reply.headers["content-type"].startswith("application/problem+json")
            assert field in reply.text
        point = {"timestamp": "2024-01-01T00:00:00Z", "value": "1.0"}
        assert client.put("/v1/streams/v", json={}).status_code == 201
        assert client.post("/v1/streams/v/points", json={"points": [point]}).status_code == 422
        assert client.post("/v1/streams/v/points", json={"points": []}).status_code == 422


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_offsets_past_the_calendar_are_422_not_500(
    models_dir: Path, make_settings: Callable[..., Settings], stamp: str
) -> None:
    """Found by the OpenAPI fuzz: converting such a stamp to UTC overflows Python's datetime."""
    with TestClient(create_app(make_settings(models_dir=models_dir))) as client:
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


def test_nul_characters_in_ids_and_labels_are_422_on_every_backend(
    models_dir: Path, make_settings: Callable[..., Settings]
) -> None:
    """PostgreSQL refuses NUL in text (SQLite stores it): such ids and labels are a 422, never a database error."""
    endpoint = {"url": "https://example.com/hook", "events": ["anomaly.opened"]}
    point = {"timestamp": "2024-01-01T00:00:00Z", "value": 1.0}
    with TestClient(create_app(make_settings(models_dir=models_dir))) as client:
        for method, url, body in (
            ("GET", "/v1/streams/a%00b", None),
            ("PUT", "/v1/streams/a%00b", {"model": "tiny"}),
            ("GET", "/v1/ui/streams/a%00b/points", None),
            ("POST", "/v1/hooks/points", {"points": [{"stream": "a\u0000b", **point}]}),
            ("POST", "/v1/webhooks", {**endpoint, "description": "a\u0000b"}),
            ("POST", "/v1/webhooks", {**endpoint, "streams": ["a\u0000b"]}),
            ("GET", "/v1/webhooks/wh_%00", None),
        ):
            reply = client.request(method, url, json=body)
            assert reply.status_code == 422 and "NUL" in reply.text, (method, url, reply.text)
