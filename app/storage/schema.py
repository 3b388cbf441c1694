"""The one place the schema is managed. Every table module is imported here, explicitly, so the metadata is
complete whoever opens the database (no side-effect imports elsewhere); Alembic migrations
(`app/storage/migrations/`) bring any database to that metadata: `create_schema` upgrades to the newest revision.

A database made by the create_all code that came before migrations has the tables but no `alembic_version`:
the baseline revision creates only the tables it lacks, which stamps it, and later revisions upgrade it in
place. Upgrades run in one transaction under a database-wide lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
transaction-scoped advisory lock), so processes starting together migrate once and the others wait.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from app.settings import Settings
from app.storage.base import Base
from app.storage.database import Database
from app.storage.tables import intervals, jobs, keys, registry, streams, webhooks

TABLE_MODULES = (registry, keys, streams, webhooks, jobs, intervals)
SCHEMA_METADATA = Base.metadata
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
UPGRADE_ATTEMPTS = 5
RETRIED_ERRORS = ("already exists", "database is locked")
ADVISORY_LOCK_KEY = 0x74737761746368  # "tswatch": the PostgreSQL advisory lock held while migrating


def migration_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration in code; `env.py` migrates `connection` (inside the caller's transaction)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(migration_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(database: Database) -> str | None:
    """The database's revision; None when it has never been migrated (empty, or made by create_all)."""
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def create_schema(database: Database) -> None:
    """Upgrade the database to the newest revision; tolerate other processes doing the same at that moment."""
    for attempt in range(UPGRADE_ATTEMPTS):
        try:
            _upgrade(database)
            return
        except OperationalError as error:
            if not any(text in str(error) for text in RETRIED_ERRORS) or attempt == UPGRADE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _upgrade(database: Database) -> None:
    if current_revision(database) == head_revision():
        return  # the common case: a read, no lock
    with database.engine.connect() as connection, migration_transaction(connection):
        command.upgrade(migration_config(connection), "head")


@contextmanager
def migration_transaction(connection: Connection) -> Iterator[None]:
    """One transaction holding the database-wide migration lock; committed when the block succeeds."""
    if connection.dialect.name != "sqlite":
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            yield
        return
    # SQLite recreates a table to alter it; the parent tables' drops must not trip foreign keys (a PRAGMA that
    # only works outside a transaction), and pysqlite would not open a transaction before DDL: do both here.
    try:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
        violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if violations:
            raise RuntimeError(f"migration left foreign key violations: {violations[:5]}")
        connection.commit()
    finally:
        connection.invalidate()  # its foreign_keys pragma was changed: never hand it out again


def open_database(settings: Settings) -> Database:
    """The configured database at the newest schema (the models folder is created for SQLite's file)."""
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    create_schema(database)
    return database
