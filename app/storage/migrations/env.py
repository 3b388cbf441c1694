"""Alembic's environment, configured in code: `app.storage.schema` passes the connection to migrate in
`config.attributes["connection"]`, already inside the transaction (and lock) it commits.

From the alembic command line (for instance `alembic revision --autogenerate --rev-id 0003_slug -m ...` with a
config whose `script_location` is this folder) no connection is passed: the configured tswatch database is used.
Name the new file `versions/v0003_slug.py` and turn the draft into explicit, portable operations.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from app.settings import Settings
from app.storage.database import make_engine
from app.storage.schema import SCHEMA_METADATA


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SCHEMA_METADATA,
        render_as_batch=True,  # SQLite can ALTER little: batch operations recreate the table there
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_from_command_line() -> None:
    if context.is_offline_mode():
        raise SystemExit("tswatch migrations run online only (no --sql)")
    engine = make_engine(Settings().resolved_database_url)
    try:
        with engine.begin() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


_connection = context.config.attributes.get("connection")
if isinstance(_connection, Connection):
    run_migrations(_connection)
else:
    run_from_command_line()
