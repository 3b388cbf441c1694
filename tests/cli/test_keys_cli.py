import json

import pytest
import typer
from typer.testing import CliRunner

from app.cli.keys import register
from app.keys.roles import Role
from app.keys.store import KeyStore
from app.settings import Settings
from app.storage.schema import open_database


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("TSWATCH_MODELS_DIR", str(tmp_path))
    monkeypatch.delenv("TSWATCH_DATABASE_URL", raising=False)
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Test root."""

    register(app)
    return app


@pytest.fixture
def store(cli):
    database = open_database(Settings())
    yield KeyStore(database)
    database.dispose()


def run(cli, *args):
    return CliRunner().invoke(cli, ["keys", *args])


def create(cli, role, name=""):
    result = run(cli, "create", "--role", role, "--name", name, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_prints_a_key_that_authenticates(cli, store):
    created = create(cli, "write", "ci")
    assert {"key", "key_id", "role"} <= created.keys()
    assert created["role"] == "write"
    info = store.authenticate(created["key"])
    assert info is not None
    assert (info.key_id, info.role, info.name) == (created["key_id"], Role.WRITE, "ci")


def test_create_without_json_prints_the_key_once(cli, store):
    result = run(cli, "create", "--role", "read")
    assert result.exit_code == 0, result.output
    [key] = [line for line in result.stdout.splitlines() if line.startswith("tsw_")]
    assert store.authenticate(key) is not None


def test_the_first_key_says_the_server_now_requires_keys_and_how_to_make_an_admin_key(cli, store):
    first = run(cli, "create", "--role", "read", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["role"] == "read"  # stdout stays the JSON
    notice = " ".join(first.stderr.split())
    assert "the server now requires a key for every request, of every role" in notice
    assert "tswatch keys create --role admin" in notice

    second = run(cli, "create", "--role", "write", "--json")
    assert second.exit_code == 0 and second.stderr == ""


def test_a_first_admin_key_needs_no_admin_hint(cli, store):
    result = run(cli, "create", "--role", "admin")
    assert "requires a key for every request" in " ".join(result.stderr.split())
    assert "tswatch keys create --role admin" not in result.stderr


def test_list_never_shows_secrets(cli):
    created = create(cli, "admin", "ops")
    listed = run(cli, "list", "--json")
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.stdout)
    assert (entry["key_id"], entry["role"], entry["name"]) == (created["key_id"], "admin", "ops")
    assert "key" not in entry
    table = run(cli, "list")
    assert table.exit_code == 0
    for output in (listed.stdout, table.stdout):
        assert created["key"] not in output
        assert created["key"].rsplit("_", 1)[-1] not in output


def test_revoke_disables_the_key(cli, store):
    created = create(cli, "read")
    result = run(cli, "revoke", created["key_id"], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["revoked_at"] is not None
    assert store.authenticate(created["key"]) is None
    assert json.loads(run(cli, "list", "--json").stdout) == []
    assert len(json.loads(run(cli, "list", "--all", "--json").stdout)) == 1


def test_revoking_an_unknown_key_exits_2(cli):
    result = run(cli, "revoke", "deadbeef")
    assert result.exit_code == 2
    assert "deadbeef" in result.output


def test_unknown_role_is_a_usage_error(cli):
    assert run(cli, "create", "--role", "root").exit_code == 2
