"""Alembic migrations on real SQLite files and PostgreSQL databases: a new database, a database made by the create_all code that came
before migrations (upgraded in place, rows kept), and processes starting together."""

import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Table, inspect, select, text
from sqlalchemy.exc import IntegrityError

from app.storage.database import Database
from app.storage.schema import (
    SCHEMA_METADATA,
    create_schema,
    current_revision,
    head_revision,
    migration_config,
    migration_transaction,
)
from app.storage.tables.registry import ModelRow
from app.storage.tables.streams import StreamEpisodeRow, StreamPointRow, StreamRow

T0 = datetime(2024, 1, 1)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty(tmp_path, database_url):
    """A database without any table (a fresh SQLite file or PostgreSQL database, per the backend parameter)."""
    database = Database(database_url or f"sqlite:///{tmp_path / 'registry.db'}")
    yield database
    database.dispose()


def schema_differences(database):
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, SCHEMA_METADATA)


def migrate(database, target, step=command.upgrade):
    """Run one alembic command to `target` the way `create_schema` runs its upgrade."""
    with database.engine.connect() as connection, migration_transaction(connection):
        step(migration_config(connection), target)


def insert(connection, table_name, *rows):
    """Insert through the table as the database has it (reflected), with SQLAlchemy's own value handling."""
    table = Table(table_name, MetaData(), autoload_with=connection)
    connection.execute(table.insert(), list(rows))


def make_legacy_database(database):
    """What today's create_all code made: the baseline tables, no alembic_version, and some rows."""
    migrate(database, "0001_baseline")
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
        insert(connection, "models", {"name": "tiny", "created_at": T0})
        insert(
            connection,
            "streams",
            {
                "id": "cpu",
                "model_name": "tiny",
                "alias": "production",
                "sensitivity": 0.5,
                "created_at": T0,
                "updated_at": T0,
                "last_timestamp": T0 + timedelta(hours=2),
                "point_count": 3,
                "revision": 2,
                "state": '{"kind": "x"}',
            },
        )
        insert(
            connection,
            "stream_points",
            *(
                {
                    "stream_id": "cpu",
                    "timestamp": T0 + timedelta(hours=position),
                    "position": position,
                    "value": 10.0 + position,
                    "score": 0.1,
                    "is_anomaly": False,
                    "model_version": 1,
                }
                for position in range(3)
            ),
        )
        opened = T0 + timedelta(hours=2)
        insert(
            connection,
            "stream_episodes",
            {
                "stream_id": "cpu",
                "started_at": opened,
                "opened_at": opened,
                "last_flagged_at": opened,
                "peak_timestamp": opened,
                "peak_score": 0.99,
                "peak_value": 12.0,
                "n_points": 1,
                "n_flagged": 1,
            },
        )
    assert current_revision(database) is None


def test_a_new_database_is_upgraded_to_exactly_the_metadata(empty):
    create_schema(empty)
    assert current_revision(empty) == head_revision() == "0006_training_jobs"
    assert schema_differences(empty) == []
    inspector = inspect(empty.engine)
    assert inspector.get_pk_constraint("stream_points")["constrained_columns"] == ["stream_id", "position"]
    indexes = {index["name"]: index for index in inspector.get_indexes("stream_points")}
    assert indexes["ix_stream_points_stream_id_timestamp"]["column_names"] == ["stream_id", "timestamp"]
    assert not indexes["ix_stream_points_stream_id_timestamp"]["unique"]
    assert {table for table in inspector.get_table_names()} == {*SCHEMA_METADATA.tables, "alembic_version"}


def test_create_schema_twice_is_a_no_op(empty):
    create_schema(empty)
    create_schema(empty)
    assert current_revision(empty) == head_revision()


def test_a_create_all_database_is_upgraded_in_place_keeping_every_row(empty):
    make_legacy_database(empty)
    create_schema(empty)
    assert current_revision(empty) == head_revision()
    assert schema_differences(empty) == []
    with empty.session() as session:
        stream = session.get(StreamRow, "cpu")
        assert stream is not None
        assert (stream.model_name, stream.alias, stream.point_count) == ("tiny", "production", 3)
        assert stream.revision == 2
        assert (stream.alerts, stream.learning_points, stream.state) == (True, None, '{"kind": "x"}')
        points = session.scalars(select(StreamPointRow).order_by(StreamPointRow.position)).all()
        assert [(p.position, p.timestamp, p.value, p.sampling) for p in points] == [
            (position, T0 + timedelta(hours=position), 10.0 + position, None) for position in range(3)
        ]
        [episode] = session.scalars(select(StreamEpisodeRow)).all()
        assert (episode.stream_id, episode.peak_score) == ("cpu", 0.99)
        assert session.get(ModelRow, "tiny") is not None


def test_the_upgraded_points_table_takes_a_duplicate_timestamp_and_a_missing_value(empty):
    make_legacy_database(empty)
    create_schema(empty)
    with empty.session() as session:
        session.add(
            StreamPointRow(stream_id="cpu", timestamp=T0, position=3, value=None, sampling="duplicate")
        )
    with empty.session() as session:
        stamps = session.scalars(select(StreamPointRow.timestamp).where(StreamPointRow.timestamp == T0)).all()
        assert len(stamps) == 2
    with pytest.raises(IntegrityError), empty.session() as session:  # the position is the key now
        session.add(StreamPointRow(stream_id="cpu", timestamp=T0 + timedelta(days=1), position=3, value=1.0))


def test_foreign_keys_are_enforced_after_a_migration(empty):
    make_legacy_database(empty)
    create_schema(empty)
    with pytest.raises(IntegrityError), empty.session() as session:
        session.add(StreamPointRow(stream_id="no-such-stream", timestamp=T0, position=0, value=1.0))


def test_a_create_all_database_missing_a_newer_table_gets_it(empty):
    make_legacy_database(empty)
    with empty.engine.begin() as connection:
        connection.execute(text("DROP TABLE webhook_inbound_messages_v2"))
    create_schema(empty)
    assert schema_differences(empty) == []


def test_downgrade_to_the_baseline_and_back(empty):
    make_legacy_database(empty)
    create_schema(empty)
    migrate(empty, "0001_baseline", step=command.downgrade)
    assert inspect(empty.engine).get_pk_constraint("stream_points")["constrained_columns"] == [
        "stream_id",
        "timestamp",
    ]
    create_schema(empty)
    assert schema_differences(empty) == []
    with empty.session() as session:
        assert len(session.scalars(select(StreamPointRow)).all()) == 3


OPEN_WHEN_TOLD = """
import sys, time
from pathlib import Path
from app.storage.database import Database
from app.storage.schema import create_schema, current_revision, head_revision
url, go, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
database = Database(url)
ready.touch()
while not go.exists():
    time.sleep(0.001)
create_schema(database)
revision = current_revision(database)
database.dispose()
sys.exit(0 if revision == head_revision() else 3)
"""


@pytest.mark.slow
def test_processes_creating_one_new_database_at_once_all_succeed(tmp_path, database_url):
    url = database_url or f"sqlite:///{tmp_path / 'registry.db'}"
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{index}" for index in range(4)]
    processes = [
        subprocess.Popen([sys.executable, "-c", OPEN_WHEN_TOLD, url, str(go), str(flag)], cwd=REPO)
        for flag in ready
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()  # every process waits at the start line: they migrate at the same moment
        assert [process.wait(timeout=120) for process in processes] == [0, 0, 0, 0]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    database = Database(url)
    try:
        assert current_revision(database) == head_revision()
        assert schema_differences(database) == []
    finally:
        database.dispose()
