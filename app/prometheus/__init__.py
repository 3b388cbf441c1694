"""Prometheus: remote write in (`POST /api/v1/write` -> streams) and per-stream metrics out (/metrics)."""
