"""Build the registry from settings: the one place that knows where artifacts and the database live."""

from __future__ import annotations

from app.registry.store import Registry
from app.settings import Settings
from app.storage.database import Database
from app.storage.schema import open_database


def open_registry(settings: Settings, database: Database | None = None) -> Registry:
    return Registry(database or open_database(settings), settings.models_dir)
