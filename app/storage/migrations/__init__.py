"""Alembic migrations of the tswatch schema: one history for SQLite and PostgreSQL.

`env.py` is configured in code by `app.storage.schema` (no alembic.ini at run time); every revision in
`versions/` is written by hand with portable operations (`op.batch_alter_table` for ALTERs, which SQLite needs
and PostgreSQL runs as plain ALTER TABLE statements).
"""
