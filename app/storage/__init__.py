"""The one storage layer: the engine and sessions (`database`), the declarative base and its single metadata
(`base`), every table (`tables/`), and the one place the schema is created (`schema`).

Domain packages (registry, keys, streams, webhooks) keep their repositories and services; they import row
classes from `app.storage.tables` and never create tables themselves.
"""
