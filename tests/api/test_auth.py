"""API keys on a real server: the role matrix, open endpoints, revocation, and the key-less startup rules."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"
BOOTSTRAP_KEY = "bootstrap-admin-key-for-tests-0123456789"


def hourly(n: int = 30) -> dict:
    stamps = pd.date_range("2024-03-01", periods=n, freq="h")
    values = 10.0 + 3.0 * np.sin(2 * np.pi * np.arange(n) / 24)
    return {"id": "a", "values": values.tolist(), "timestamps": [s.isoformat() for s in stamps]}


SERIES = {"series": [hourly()]}
DETECT = {"series": [hourly(120)], "learning_points": 100}  # more readings than the learning period
READ_REQUESTS = [
    ("POST", "/v1/models/tiny/forecast", {"json": SERIES}),
    ("POST", "/v1/models/tiny/detect", {"json": DETECT}),
    ("POST", "/v1/detect", {"json": DETECT}),
    ("GET", "/v1/models", {}),
    ("GET", "/v1/models/tiny", {}),
    ("GET", "/v1/models/tiny/versions/1", {}),
]
OPEN_PATHS = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]


def create_key(run_cli, models_dir, role: str) -> dict:
    result = run_cli(
        models_dir, "keys", "create", "--role", role, "--name", f"{role} test key", "--json", timeout=120
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["role"] == role and created["key"].startswith(f"tsw_{created['key_id']}_")
    return created


def assert_unauthenticated(response: httpx.Response, invalid_token: bool) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="tswatch"')
    assert ('error="invalid_token"' in challenge) == invalid_token
    body = response.json()
    assert body["type"] == "urn:tswatch:problem:unauthenticated" and body["status"] == 401 and body["detail"]


def assert_forbidden(response: httpx.Response, role: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:tswatch:problem:forbidden"
    assert body["required_role"] == "admin" and body["key_role"] == role


def test_role_matrix_open_endpoints_and_revocation(models_dir, server_factory, run_cli):
    with ThreadPoolExecutor(3) as pool:  # three CLI processes at once: each pays the import cost
        keys = dict(
            zip(
                ("read", "write", "admin"),
                pool.map(lambda role: create_key(run_cli, models_dir, role), ("read", "write", "admin")),
                strict=True,
            )
        )
    server = server_factory(models_dir, TSWATCH_ADMIN_KEY=BOOTSTRAP_KEY)
    assert "every endpoint is open" not in server.log()

    # No key, or a key the server does not know: 401 with a Bearer challenge, for every protected endpoint.
    alias_put = ("PUT", "/v1/models/tiny/aliases/staging", {"json": {"version": 2}})
    alias_delete = ("DELETE", "/v1/models/tiny/aliases/staging", {})
    for method, path, kwargs in [*READ_REQUESTS, alias_put, alias_delete]:
        with server.client() as client:
            assert_unauthenticated(client.request(method, path, **kwargs), invalid_token=False)
        with server.client(key="tsw_deadbeef_" + "x" * 43) as client:
            assert_unauthenticated(client.request(method, path, **kwargs), invalid_token=True)
        with server.client() as client:
            malformed = client.request(
                method, path, headers={"Authorization": f"Basic {keys['read']['key']}"}, **kwargs
            )
            assert_unauthenticated(malformed, invalid_token=False)
            empty_token = client.request(method, path, headers={"Authorization": "Bearer"}, **kwargs)
            assert_unauthenticated(empty_token, invalid_token=False)

    # Health, readiness, metrics and the docs stay open.
    with server.client() as client:
        for path in OPEN_PATHS:
            assert client.get(path).status_code == 200, path

    # Read and write keys read; only admin keys (the CLI's and the bootstrapped one) move aliases.
    for role in ("read", "write"):
        with server.client(key=keys[role]["key"]) as client:
            for method, path, kwargs in READ_REQUESTS:
                response = client.request(method, path, **kwargs)
                assert response.status_code == 200, (role, path, response.text)
            assert_forbidden(client.request(*alias_put[:2], **alias_put[2]), role)
            assert_forbidden(client.request(*alias_delete[:2], **alias_delete[2]), role)
    for key in (keys["admin"]["key"], BOOTSTRAP_KEY):
        with server.client(key=key) as client:
            for method, path, kwargs in READ_REQUESTS:
                assert client.request(method, path, **kwargs).status_code == 200, path
            response = client.put("/v1/models/tiny/aliases/staging", json={"version": 2})
            assert response.status_code == 200, response.text
            assert response.json() == {"name": "tiny", "alias": "staging", "version": 2}
            assert client.delete("/v1/models/tiny/aliases/staging").status_code == 204
    # The scheme is "Bearer" in any case.
    with server.client() as client:
        response = client.get("/v1/models", headers={"Authorization": f"bearer {keys['read']['key']}"})
        assert response.status_code == 200

    # The bootstrap key is registered as an admin key; keys are listed without secrets.
    listed = run_cli(models_dir, "keys", "list", "--json", timeout=120)
    assert listed.returncode == 0, listed.stderr
    roles = sorted(key["role"] for key in json.loads(listed.stdout))
    assert roles == ["admin", "admin", "read", "write"]
    assert keys["read"]["key"] not in listed.stdout and BOOTSTRAP_KEY not in listed.stdout

    # Revoking a key from another process takes effect within a few seconds; the others keep working.
    with server.client(key=keys["read"]["key"]) as client:
        assert client.get("/v1/models").status_code == 200  # cached as valid right now
        revoked = run_cli(models_dir, "keys", "revoke", keys["read"]["key_id"], "--json", timeout=120)
        assert revoked.returncode == 0, revoked.stderr
        assert json.loads(revoked.stdout)["revoked_at"]
        deadline = time.monotonic() + 5
        while (response := client.get("/v1/models")).status_code == 200:
            assert time.monotonic() < deadline, "a revoked key kept working"
            time.sleep(0.2)
        assert_unauthenticated(response, invalid_token=True)
    with server.client(key=keys["write"]["key"]) as client:
        assert client.get("/v1/models").status_code == 200
    assert keys["read"]["key"] not in server.log() and BOOTSTRAP_KEY not in server.log()


def test_keyless_server_is_open_on_loopback_and_refuses_other_addresses(models_dir, server_factory, run_cli):
    server = server_factory(models_dir)
    assert "No API keys exist: every endpoint is open" in " ".join(server.log().split())
    with server.client() as client:  # every caller is an anonymous admin
        for method, path, kwargs in READ_REQUESTS:
            assert client.request(method, path, **kwargs).status_code == 200, path
        assert client.put("/v1/models/tiny/aliases/staging", json={"version": 2}).status_code == 200
        assert client.delete("/v1/models/tiny/aliases/staging").status_code == 204

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    started = time.monotonic()
    result = run_cli(models_dir, "serve", "--host", "0.0.0.0", "--port", port, timeout=90)
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = " ".join(result.stderr.split())
    assert "no API keys exist" in message and "refusing to start" in message and "0.0.0.0" in message
    assert "tswatch keys create" in message
    assert "Uvicorn running" not in result.stdout + result.stderr
    assert time.monotonic() - started < 90
