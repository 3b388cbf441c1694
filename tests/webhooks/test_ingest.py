"""PointIngest on a real SQLite database and a real StreamService: signatures, idempotency, all-or-nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.errors import ConflictError
from app.registry.factory import open_registry
from app.serving.pool import ModelPool
from app.settings import Settings
from app.storage.schema import open_database
from app.streams.service import StagedAppend, StreamService
from app.webhooks.inbound import IdempotencyStore, InboundSecretStore
from app.webhooks.ingest import InboundPoint, PointIngest, SignatureRejectedError, group_by_stream
from app.webhooks.signing import signed_headers

pytestmark = pytest.mark.slow

START = datetime(2024, 1, 1)


def run_with_ingest(models_dir: Path, scenario: Callable[[PointIngest], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        settings = Settings(models_dir=models_dir)
        database = open_database(settings)
        executor = ThreadPoolExecutor(max_workers=1)
        pool = ModelPool(open_registry(settings, database), executor)
        streams = StreamService(database, pool)
        try:
            return await scenario(
                PointIngest(streams, InboundSecretStore(database), IdempotencyStore(database))
            )
        finally:
            await pool.close()
            executor.shutdown(wait=True)
            database.dispose()

    return asyncio.run(main())


def points(stream: str, start: int, count: int) -> list[InboundPoint]:
    return [(stream, START + timedelta(hours=i), 10.0 + (i % 5)) for i in range(start, start + count)]


def render(staged: list[StagedAppend]) -> str:
    return json.dumps({item.stream_id: len(item.points) for item in staged})


def test_points_are_grouped_per_stream_in_order_of_first_appearance() -> None:
    mixed = [("b", START, 1.0), ("a", START, 2.0), ("b", START + timedelta(hours=1), 3.0)]
    assert group_by_stream(mixed) == [
        ("b", [(START, 1.0), (START + timedelta(hours=1), 3.0)]),
        ("a", [(START, 2.0)]),
    ]


def test_signatures_are_checked_against_the_active_secrets(models_dir: Path) -> None:
    async def scenario(ingest: PointIngest) -> None:
        body = b'{"points": []}'
        with pytest.raises(SignatureRejectedError, match="no active inbound webhook secret") as none:
            await ingest.verify(signed_headers("whsec_" + "A" * 32, "msg_1", body), body)
        assert none.value.status == 401
        _, secret = ingest.secrets.create("monitoring")
        assert await ingest.verify(signed_headers(secret, "msg_1", body), body) == "msg_1"
        with pytest.raises(SignatureRejectedError):
            await ingest.verify(signed_headers(secret, "msg_1", body), body + b" ")

    run_with_ingest(models_dir, scenario)


def test_a_repeated_webhook_id_gets_the_stored_answer_and_is_processed_once(models_dir: Path) -> None:
    async def scenario(ingest: PointIngest) -> None:
        for stream in ("a", "b"):
            await ingest.streams.upsert(stream, "tiny")
        batch = points("a", 0, 30) + points("b", 0, 10)
        first = await ingest.ingest(batch, "msg_1", render)
        assert (first.status, first.replayed, json.loads(first.body)) == (200, False, {"a": 30, "b": 10})
        again = await ingest.ingest(batch, "msg_1", render)
        assert (again.status, again.replayed, again.body) == (200, True, first.body)
        assert (await ingest.streams.get("a")).point_count == 30
        unsigned = await ingest.ingest(points("a", 30, 2), None, render)
        assert not unsigned.replayed and (await ingest.streams.get("a")).point_count == 32

    run_with_ingest(models_dir, scenario)


def test_a_refused_batch_stores_nothing_and_releases_its_webhook_id(models_dir: Path) -> None:
    async def scenario(ingest: PointIngest) -> None:
        for stream in ("a", "b"):
            await ingest.streams.upsert(stream, "tiny")
        await ingest.ingest(points("b", 0, 5), None, render)
        stale = points("a", 0, 30) + points("b", 0, 1)  # b's point is not after its last one
        with pytest.raises(ConflictError, match="stream 'b'"):
            await ingest.ingest(stale, "msg_2", render)
        assert (await ingest.streams.get("a")).point_count == 0
        retried = await ingest.ingest(points("a", 0, 30) + points("b", 5, 1), "msg_2", render)
        assert not retried.replayed and json.loads(retried.body) == {"a": 30, "b": 1}

    run_with_ingest(models_dir, scenario)
