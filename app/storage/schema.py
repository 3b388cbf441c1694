"""The one place the schema is created. Every table module is imported here, explicitly, so the metadata is
complete whoever opens the database (no side-effect imports elsewhere); migrations would hook in here too."""

from __future__ import annotations

import time

from sqlalchemy.exc import OperationalError

from app.settings import Settings
from app.storage.base import Base
from app.storage.database import Database
from app.storage.tables import keys, registry, streams, webhooks

TABLE_MODULES = (registry, keys, streams, webhooks)
CREATE_ATTEMPTS = 5


def create_schema(database: Database) -> None:
    """Create missing tables; tolerate another process creating them at the same moment."""
    for attempt in range(CREATE_ATTEMPTS):
        try:
            Base.metadata.create_all(database.engine)
            return
        except OperationalError as error:
            if "already exists" not in str(error) or attempt == CREATE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def open_database(settings: Settings) -> Database:
    """The configured database with every table in place (the models folder is created for SQLite's file)."""
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    create_schema(database)
    return database
