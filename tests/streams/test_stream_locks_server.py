"""A real uvicorn serving `create_app`: per-stream locks do not outlive their use (issue 13, item 6).

Before the fix every stream id a client ever touched, even one that answered 404, kept an asyncio.Lock for the
life of the process. The service's `active_locks` (stream ids whose lock is held or awaited) must be 0 when idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.api.app import create_app
from app.settings import Settings

from .helpers import hourly_series

MISSING_IDS = 2_000
REAL_IDS = ("real-a", "real-b", "real-c")


def points_body(start: int, count: int, stream: str | None = None) -> dict[str, Any]:
    stamps, values = hourly_series(start + count)
    extra = {} if stream is None else {"stream": stream}
    return {
        "points": [
            {**extra, "timestamp": stamps[i].isoformat() + "Z", "value": float(values[i])}
            for i in range(start, start + count)
        ]
    }


async def append_to_missing_streams(url: str) -> list[int]:
    """Concurrent appends (and a few deletes) to ids that do not exist: every one answers 404."""
    gate = asyncio.Semaphore(16)
    body = points_body(0, 1)

    async def one(client: httpx.AsyncClient, index: int) -> int:
        async with gate:
            if index % 100 == 0:
                return (await client.delete(f"/v1/streams/gone-{index}")).status_code
            return (await client.post(f"/v1/streams/missing-{index}/points", json=body)).status_code

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return list(await asyncio.gather(*(one(client, index) for index in range(MISSING_IDS))))


def stream_service_locks(application: FastAPI) -> int:
    return int(application.state.services.streams.active_locks)


def test_no_lock_outlives_its_request(
    models_dir: Path,
    make_settings: Callable[..., Settings],
    live_server: Callable[..., AbstractContextManager[str]],
) -> None:
    application = create_app(make_settings(models_dir=models_dir))
    with live_server(application, lifespan="on") as url, httpx.Client(base_url=url, timeout=60) as client:
        for stream in REAL_IDS:
            assert client.put(f"/v1/streams/{stream}", json={"model": "tiny"}).status_code == 201
            reply = client.post(f"/v1/streams/{stream}/points", json=points_body(0, 30))
            assert reply.status_code == 200, reply.text
        batch = {"points": [p for s in REAL_IDS for p in points_body(30, 5, stream=s)["points"]]}
        assert client.post("/v1/hooks/points", json=batch).status_code == 200  # several locks, one batch
        with_missing = (
            points_body(40, 1, stream="real-a")["points"] + points_body(0, 1, stream="nowhere")["points"]
        )
        assert client.post("/v1/hooks/points", json={"points": with_missing}).status_code == 404

        statuses = asyncio.run(append_to_missing_streams(url))
        assert set(statuses) == {404}, sorted(set(statuses))

        assert stream_service_locks(application) == 0
        assert client.get("/v1/streams/real-a").json()["point_count"] == 35
