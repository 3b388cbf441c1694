"""The dashboard's page, static files and read-only data routes, in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.keys.roles import Role
from app.settings import Settings

pytestmark = pytest.mark.slow


def test_page_static_files_and_data_routes(models_dir: Path, make_settings: Callable[..., Settings]) -> None:
    application = create_app(make_settings(models_dir=models_dir))
    with TestClient(application) as client:
        redirect = client.get("/ui", follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"] == "/ui/"
        page = client.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for name in ("app.js", "chart.js", "app.css"):
            assert "static/" + name in page.text
            assert client.get(f"/ui/static/{name}").status_code == 200
        assert "cdn" not in page.text.lower() and "https://" not in page.text

        session = client.get("/v1/ui/session").json()
        assert session["authenticated"] and not session["auth_required"] and session["role"] == "admin"
        assert session["features"]["streams"]

        recent = client.get("/v1/ui/models/tiny/recent").json()
        assert recent["version"] == 1 and recent["window"] == 24 and recent["horizon"] == 6
        assert len(recent["values"]) == len(recent["timestamps"]) > 24
        assert recent["timestamps"] == sorted(recent["timestamps"])
        assert client.get("/v1/ui/models/tiny/recent?version=2").json()["version"] == 2
        assert client.get("/v1/ui/models/tiny/recent?series=nope").status_code == 404
        assert client.get("/v1/ui/models/nope/recent").status_code == 404

        # the recent data is enough to forecast and to score
        series = {"values": recent["values"], "timestamps": recent["timestamps"]}
        assert client.post("/v1/models/tiny/forecast", json={"series": [series]}).status_code == 200
        assert client.post("/v1/models/tiny/detect", json={"series": [series]}).status_code == 200

        assert client.get("/v1/ui/streams").json() == []
        assert client.put("/v1/streams/s1", json={"model": "tiny"}).status_code == 201
        points = [
            {"timestamp": f"2024-05-01T{hour:02d}:00:00Z", "value": 10.0 + hour % 3} for hour in range(20)
        ]
        assert client.post("/v1/streams/s1/points", json={"points": points}).status_code == 200
        [listed] = client.get("/v1/ui/streams").json()
        assert listed["id"] == "s1" and listed["point_count"] == 20 and listed["open_alarms"] == 0
        stored = client.get("/v1/ui/streams/s1/points?limit=5").json()
        assert [p["index"] for p in stored] == [15, 16, 17, 18, 19]
        assert client.get("/v1/ui/streams/nope/points").status_code == 404

        # with keys: the page stays public, the data needs a key, the session route says why
        application.state.services.keys.create(Role.READ, "viewer")
        assert client.get("/ui/").status_code == 200
        assert client.get("/v1/ui/streams").status_code == 401
        session = client.get("/v1/ui/session", headers={"Authorization": "Bearer tsw_wrong"}).json()
        assert session["auth_required"] and not session["authenticated"] and session["problem"]
