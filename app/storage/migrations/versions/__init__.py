"""Revisions, oldest first: `v0001_baseline` (the schema `create_all` made before migrations), then one file per
schema change. Revision ids are `NNNN_slug`; the module names carry a `v` so they are importable."""
