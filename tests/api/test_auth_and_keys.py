import time
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from app.api.auth import Principal
from app.api.deps import AdminAccess, ReadAccess, WriteAccess
from app.api.metrics import ApiMetrics
from app.api.problems import install_problem_handlers
from app.keys.roles import Role
from app.keys.store import KeyStore
from app.settings import Settings
from app.storage.database import Database

PROBLEM = "application/problem+json"


def payload(principal: Principal) -> dict:
    return {"key_id": principal.key_id, "role": principal.role.value}


def build_app(keys: KeyStore, database: Database, tmp_path, host: str = "127.0.0.1") -> FastAPI:
    app = FastAPI()
    app.state.services = SimpleNamespace(
        settings=Settings(models_dir=tmp_path, host=host), database=database, keys=keys, metrics=ApiMetrics()
    )
    install_problem_handlers(app)

    @app.get("/read")
    async def read(principal: ReadAccess) -> dict:
        return payload(principal)

    @app.post("/write")
    async def write(principal: WriteAccess) -> dict:
        return payload(principal)

    @app.delete("/admin")
    async def admin(principal: AdminAccess) -> dict:
        return payload(principal)

    return app


@pytest.fixture
def keys(database):
    return KeyStore(database, cache_ttl=0.1)


@pytest.fixture
def client(keys, database, tmp_path, live_server):
    with live_server(build_app(keys, database, tmp_path)) as url, httpx.Client(base_url=url) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_unauthorized(response: httpx.Response, secret: str | None = None) -> dict:
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith('Bearer realm="tswatch"')
    body = response.json()
    assert body["type"] == "urn:tswatch:problem:unauthenticated"
    assert body["status"] == 401
    if secret:
        assert secret not in response.text
    return body


def test_open_mode_without_keys_is_an_anonymous_admin(client):
    response = client.delete("/admin")
    assert response.status_code == 200
    assert response.json() == {"key_id": None, "role": "admin"}


def test_revoking_the_last_key_reopens_only_a_loopback_server(keys, database, tmp_path, live_server):
    info, plaintext = keys.create(Role.ADMIN)
    keys.revoke(info.key_id)
    with live_server(build_app(keys, database, tmp_path, host="127.0.0.1")) as url:
        assert httpx.delete(f"{url}/admin").status_code == 200
    with live_server(build_app(keys, database, tmp_path, host="0.0.0.0")) as url:
        body = assert_unauthorized(httpx.delete(f"{url}/admin", headers=bearer(plaintext)), plaintext)
        assert "no active API keys" in body["detail"]


def test_missing_header_is_401(client, keys):
    keys.create(Role.ADMIN)
    body = assert_unauthorized(client.get("/read"))
    assert "missing" in body["detail"]


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "tsw_abc", "Token tsw_x"])
def test_malformed_header_is_401(client, keys, header):
    keys.create(Role.ADMIN)
    body = assert_unauthorized(client.get("/read", headers={"Authorization": header}))
    assert "malformed" in body["detail"]


def test_unknown_key_is_401_without_echoing_it(client, keys):
    keys.create(Role.ADMIN)
    secret = "tsw_00000000_" + "x" * 43
    response = client.get("/read", headers=bearer(secret))
    body = assert_unauthorized(response, secret)
    assert "unknown or has been revoked" in body["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_revoked_key_is_401(client, keys):
    keys.create(Role.READ, "keeps the server locked")
    info, plaintext = keys.create(Role.ADMIN)
    assert client.get("/read", headers=bearer(plaintext)).status_code == 200
    keys.revoke(info.key_id)
    assert_unauthorized(client.get("/read", headers=bearer(plaintext)), plaintext)


def test_revocation_from_another_process_applies_after_the_ttl(client, keys, database):
    keys.create(Role.READ, "keeps the server locked")
    info, plaintext = keys.create(Role.READ)
    assert client.get("/read", headers=bearer(plaintext)).status_code == 200
    KeyStore(database).revoke(info.key_id)  # e.g. `tswatch keys revoke` in another process
    time.sleep(0.15)
    assert_unauthorized(client.get("/read", headers=bearer(plaintext)), plaintext)


def test_insufficient_role_is_403_naming_both_roles(client, keys):
    info, plaintext = keys.create(Role.READ)
    response = client.post("/write", headers=bearer(plaintext))
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert "www-authenticate" not in response.headers
    body = response.json()
    assert body["type"] == "urn:tswatch:problem:forbidden"
    assert "'write'" in body["detail"] and "'read'" in body["detail"] and info.key_id in body["detail"]
    assert (body["required_role"], body["key_role"]) == ("write", "read")


def test_matching_role_is_admitted(client, keys):
    info, plaintext = keys.create(Role.WRITE)
    response = client.post("/write", headers=bearer(plaintext))
    assert response.status_code == 200
    assert response.json() == {"key_id": info.key_id, "role": "write"}


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.READ, {"/read"}),
        (Role.WRITE, {"/read", "/write"}),
        (Role.ADMIN, {"/read", "/write", "/admin"}),
    ],
)
def test_higher_roles_include_lower_ones(client, keys, role, allowed):
    _, plaintext = keys.create(role)
    for method, path in (("GET", "/read"), ("POST", "/write"), ("DELETE", "/admin")):
        status = client.request(method, path, headers=bearer(plaintext)).status_code
        assert status == (200 if path in allowed else 403), (role, path)


def test_bootstrap_admin_key_authenticates(client, keys):
    secret = "container-admin-secret-0123456789"
    keys.ensure_bootstrap(secret)
    assert client.delete("/admin", headers=bearer(secret)).json()["role"] == "admin"
    assert_unauthorized(client.delete("/admin"))


def test_routes_declare_the_bearer_scheme_in_openapi(client):
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
