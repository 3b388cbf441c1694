"""Replicas over one PostgreSQL database see the same registry: an alias move or a new version made anywhere is
served by every replica within the alias poll interval (each replica has its own models folder, as on separate
hosts: artifacts come from the database). `/readyz` names the database and turns 503 when it is unreachable."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.registry.factory import open_registry
from app.settings import Settings

from .helpers import hourly_points

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

POLL_SECONDS = 0.5  # TSWATCH_ALIAS_POLL_SECONDS of the test servers (tests/conftest.py cli_env)
HISTORY = hourly_points(0, 48)
SERIES = {
    "series": [
        {
            "id": "s",
            "values": [point["value"] for point in HISTORY],
            "timestamps": [point["timestamp"] for point in HISTORY],
        }
    ]
}


def served_version(client: httpx.Client) -> int:
    reply = client.post("/v1/models/tiny/forecast", json=SERIES)
    assert reply.status_code == 200, reply.text
    return int(reply.json()["model"]["version"])


def wait_all_serve(clients: list[httpx.Client], version: int, timeout: float = 30.0) -> float:
    """Seconds until every client's default forecast comes from `version`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all(served_version(client) == version for client in clients):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not every replica serves v{version} after {timeout} s")


def publish_copy(settings: Settings, version: int) -> int:
    """A new version of `tiny` holding `version`'s network, published through one replica's registry."""
    registry = open_registry(settings)
    try:
        loaded = registry.load(registry.get_version("tiny", version))
        manifest = loaded.manifest.model_copy(update={"version": None, "weights": None})
        return registry.publish("tiny", loaded.forecaster.network.state_dict(), manifest).version
    finally:
        registry.database.dispose()


def set_production(settings: Settings, version: int) -> None:
    registry = open_registry(settings)
    try:
        registry.set_alias("tiny", "production", version, force=True)  # tiny models lose to seasonal naive
    finally:
        registry.database.dispose()


def test_alias_moves_and_new_versions_reach_every_replica(
    models_dir: Path, server_factory: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    other_dir = tmp_path / "models-b"
    shutil.copytree(models_dir, other_dir)
    replicas = [server_factory(models_dir), server_factory(other_dir)]
    clients = [replica.client(timeout=60) for replica in replicas]
    assert [served_version(client) for client in clients] == [1, 1]
    settings = Settings(models_dir=models_dir, database_url=database_url)

    set_production(settings, 2)  # an alias move, made outside both servers
    assert wait_all_serve(clients, 2) < POLL_SECONDS + 10.0

    new = publish_copy(settings, 1)  # a new version, its files only in the first replica's folder
    assert new == 3
    for client in clients:
        listed = client.get("/v1/models/tiny").json()
        assert 3 in listed["versions"], listed
    set_production(settings, new)
    assert wait_all_serve(clients, new) < POLL_SECONDS + 10.0
    for client in clients:
        ready = client.get("/readyz").json()
        assert ready["checks"]["database"] == "postgresql: reachable"
        assert {"name": "tiny", "version": new} in ready["models"]
        client.close()
    for replica in replicas:
        assert "Traceback" not in replica.log()


def test_readiness_reports_the_database(models_dir: Path, database_url: str) -> None:
    """Reachable, then every connection refused (the database closed to new connections and its sessions
    ended): 503 naming the cause, and ready again once it is back."""
    name = database_url.rsplit("/", 1)[1]
    admin = database_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    application = create_app(Settings(models_dir=models_dir, database_url=database_url))
    with TestClient(application) as client, psycopg.connect(admin, autocommit=True) as control:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["database"] == "postgresql: reachable" and checks["registry"] == "reachable"

        control.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        control.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        try:
            down = client.get("/readyz")
            assert down.status_code == 503, down.text
            assert down.json()["status"] == "not_ready"
            assert down.json()["checks"]["database"] == "postgresql: unreachable: OperationalError"
            assert down.json()["checks"]["registry"] == "unreachable: OperationalError"
        finally:
            control.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        assert client.get("/readyz").status_code == 200
