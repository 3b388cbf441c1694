"""`tswatch db upgrade` and `tswatch db current` through the `tswatch` command, on a temporary SQLite registry
or a fresh PostgreSQL database."""

import pytest
from typer.testing import CliRunner

from app.cli.main import cli as tswatch
from app.settings import Settings
from app.storage.database import Database
from app.storage.schema import current_revision, head_revision


@pytest.fixture
def cli(tmp_path, monkeypatch, database_url):
    monkeypatch.setenv("TSWATCH_MODELS_DIR", str(tmp_path / "models"))
    if database_url is None:
        monkeypatch.delenv("TSWATCH_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("TSWATCH_DATABASE_URL", database_url)
    return tswatch


def run(cli, *args):
    result = CliRunner().invoke(cli, ["db", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_current_then_upgrade_then_current(cli):
    head = head_revision()
    assert run(cli, "current").strip() == f"none (head is {head}; run `tswatch db upgrade`)"
    assert head in run(cli, "upgrade")
    assert run(cli, "current").strip() == f"{head} (head)"
    database = Database(Settings().resolved_database_url)
    try:
        assert current_revision(database) == head
    finally:
        database.dispose()


def test_upgrade_twice_is_harmless(cli):
    run(cli, "upgrade")
    assert head_revision() in run(cli, "upgrade")
