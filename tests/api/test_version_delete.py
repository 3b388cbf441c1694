"""`DELETE /v1/models/{name}/versions/{v}` and `tswatch models delete` against a real server: refused (409
problem+json naming the alias) while an alias points at the version; otherwise its row, stored files and folder
go, and a stream pinned to it keeps its points, answers 409 on append (also after a restart) until re-pointed."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.registry.factory import open_registry
from app.settings import Settings
from app.storage.tables.registry import ArtifactRow

PROBLEM = "application/problem+json"
START = datetime(2024, 3, 1)


def points(first: int, count: int) -> dict[str, Any]:
    return {
        "points": [
            {"timestamp": (START + timedelta(hours=i)).isoformat(), "value": 10.0 + (i % 24) / 4}
            for i in range(first, first + count)
        ]
    }


def stored_versions(models_dir: Path, database_url: str | None) -> list[int]:
    registry = open_registry(Settings(models_dir=models_dir, database_url=database_url))
    try:
        with registry.database.session() as session:
            rows = session.scalars(select(ArtifactRow.version).where(ArtifactRow.model_name == "tiny")).all()
        return sorted(set(rows))
    finally:
        registry.database.dispose()


def test_deleting_a_version_over_http(
    models_dir: Path,
    database_url: str | None,
    server_factory: Callable[..., Any],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    server = server_factory(models_dir)
    with server.client() as client:
        pinned = {"model": "tiny", "version": 2, "learning_points": 20}
        assert client.put("/v1/streams/pinned", json=pinned).status_code == 201
        assert client.post("/v1/streams/pinned/points", json=points(0, 25)).status_code == 200
        assert client.post("/v1/streams/pinned/points", json=points(25, 5)).status_code == 200

        refused = client.delete("/v1/models/tiny/versions/1")
        assert refused.status_code == 409
        assert refused.headers["content-type"].startswith(PROBLEM)
        assert "'production'" in refused.json()["detail"]
        assert refused.json()["aliases"] == ["production"]

        assert client.delete("/v1/models/tiny/versions/2").status_code == 204
        assert client.get("/v1/models/tiny/versions/2").status_code == 404
        assert client.get("/v1/models/tiny").json()["versions"] == [1]
        assert client.delete("/v1/models/tiny/versions/2").status_code == 404
        assert stored_versions(models_dir, database_url) == [1]
        assert not (models_dir / "tiny" / "2").exists()

        assert client.get("/v1/streams/pinned").json()["point_count"] == 30
        gone = client.post("/v1/streams/pinned/points", json=points(30, 1))
        assert gone.status_code == 409, gone.text
        assert gone.headers["content-type"].startswith(PROBLEM)
        assert "PUT /v1/streams/pinned" in gone.json()["detail"]
    server.stop()

    # After a restart the stream's state cannot be replayed on the deleted version: it starts a fresh detector.
    server = server_factory(models_dir)
    with server.client() as client:
        assert client.get("/v1/streams/pinned").json()["point_count"] == 30
        assert client.post("/v1/streams/pinned/points", json=points(30, 1)).status_code == 409
        assert client.put("/v1/streams/pinned", json={**pinned, "version": 1}).status_code == 200
        appended = client.post("/v1/streams/pinned/points", json=points(30, 2))
        assert appended.status_code == 200, appended.text
        assert appended.json()["model"] == {"name": "tiny", "version": 1}
        assert client.get("/v1/streams/pinned").json()["point_count"] == 32

    refused_cli = run_cli(models_dir, "models", "delete", "tiny", "1")
    assert refused_cli.returncode == 2
    assert "production" in refused_cli.stderr
    missing_cli = run_cli(models_dir, "models", "delete", "tiny", "2")
    assert missing_cli.returncode == 2 and "no version 2" in missing_cli.stderr
