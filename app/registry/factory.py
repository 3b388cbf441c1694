"""Build the registry from settings: the one place that knows where artifacts and the database live."""

from __future__ import annotations

from app.registry import keys as _keys_table  # noqa: F401 - registers the api_keys table
from app.registry.database import Database
from app.registry.store import Registry
from app.settings import Settings


def open_database(settings: Settings) -> Database:
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    database.create_schema()
    return database


def open_registry(settings: Settings, database: Database | None = None) -> Registry:
    return Registry(database or open_database(settings), settings.models_dir)
