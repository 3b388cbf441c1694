"""PointIngest on a real database (SQLite or PostgreSQL) and a real StreamService: signatures, idempotency by (signer,
webhook-id), pruning of stored answers, all-or-nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from app.api.forecast_answers import answer_forecasts
from app.errors import InvalidInputError
from app.registry.factory import open_registry
from app.serving.pool import ModelPool
from app.settings import Settings
from app.storage.database import Database
from app.storage.schema import open_database
from app.storage.tables.webhooks import InboundMessageRow
from app.streams.service import StagedAppend, StreamService
from app.timestamps import utc_now
from app.webhooks.inbound import (
    PRUNE_BATCH,
    RETENTION,
    IdempotencyStore,
    InboundSecretStore,
    MessageKey,
)
from app.webhooks.ingest import InboundPoint, PointIngest, SignatureRejectedError, group_by_stream
from app.webhooks.outbox import Outbox
from app.webhooks.signing import signed_headers

pytestmark = pytest.mark.slow

START = datetime(2024, 1, 1)
SIGNED = MessageKey("isec_a", "msg_1")


@pytest.fixture
def settings(models_dir: Path, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(models_dir=models_dir)


def run_with_ingest(settings: Settings, scenario: Callable[[PointIngest], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        database = open_database(settings)
        executor = ThreadPoolExecutor(max_workers=1)
        pool = ModelPool(open_registry(settings, database), executor, answer_forecasts)
        streams = StreamService(database, pool, Outbox(database).record_alarms)
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


def test_signatures_are_checked_against_the_active_secrets(settings: Settings) -> None:
    async def scenario(ingest: PointIngest) -> None:
        body = b'{"points": []}'
        with pytest.raises(SignatureRejectedError, match="no active inbound webhook secret") as none:
            await ingest.verify(signed_headers("whsec_" + "A" * 32, "msg_1", body), body)
        assert none.value.status == 401
        info, secret = ingest.secrets.create("monitoring")
        assert await ingest.verify(signed_headers(secret, "msg_1", body), body) == MessageKey(
            info.id, "msg_1"
        )
        other, other_secret = ingest.secrets.create("other sender")
        key = await ingest.verify(signed_headers(other_secret, "msg_1", body), body)
        assert key == MessageKey(other.id, "msg_1")
        with pytest.raises(SignatureRejectedError):
            await ingest.verify(signed_headers(secret, "msg_1", body), body + b" ")

    run_with_ingest(settings, scenario)


def test_a_webhook_id_longer_than_the_stored_key_is_refused_not_a_server_error(settings: Settings) -> None:
    """PostgreSQL enforces the column's length (SQLite does not): the longest id is stored, a longer one refused."""
    longest = InboundMessageRow.MSG_ID_LENGTH

    async def scenario(ingest: PointIngest) -> None:
        await ingest.streams.upsert("a", "tiny")
        info, secret = ingest.secrets.create("monitoring")
        body = b'{"points": []}'
        with pytest.raises(SignatureRejectedError, match=f"longer than {longest}") as refused:
            await ingest.verify(signed_headers(secret, "m" * (longest + 1), body), body)
        assert refused.value.status == 401
        key = await ingest.verify(signed_headers(secret, "m" * longest, body), body)
        assert key == MessageKey(info.id, "m" * longest)
        await ingest.ingest(points("a", 0, 1), key, render)
        assert stored_keys(ingest.idempotency) == {key}

    run_with_ingest(settings, scenario)


def test_a_repeated_webhook_id_gets_the_stored_answer_and_is_processed_once(settings: Settings) -> None:
    async def scenario(ingest: PointIngest) -> None:
        for stream in ("a", "b"):
            await ingest.streams.upsert(stream, "tiny")
        batch = points("a", 0, 30) + points("b", 0, 10)
        first = await ingest.ingest(batch, SIGNED, render)
        assert (first.status, first.replayed, json.loads(first.body)) == (200, False, {"a": 30, "b": 10})
        again = await ingest.ingest(batch, SIGNED, render)
        assert (again.status, again.replayed, again.body) == (200, True, first.body)
        assert (await ingest.streams.get("a")).point_count == 30
        unsigned = await ingest.ingest(points("a", 30, 2), None, render)
        assert not unsigned.replayed and (await ingest.streams.get("a")).point_count == 32

    run_with_ingest(settings, scenario)


def test_a_refused_batch_stores_nothing_and_releases_its_webhook_id(settings: Settings) -> None:
    async def scenario(ingest: PointIngest) -> None:
        for stream in ("a", "b"):
            await ingest.streams.upsert(stream, "tiny")
        await ingest.ingest(points("b", 0, 5), None, render)
        stale = [*points("a", 0, 30), ("b", START, float("nan"))]  # b's value is not a number
        with pytest.raises(InvalidInputError, match="stream 'b'"):
            await ingest.ingest(stale, MessageKey("isec_a", "msg_2"), render)
        assert (await ingest.streams.get("a")).point_count == 0
        retried = await ingest.ingest(
            points("a", 0, 30) + points("b", 5, 1), MessageKey("isec_a", "msg_2"), render
        )
        assert not retried.replayed and json.loads(retried.body) == {"a": 30, "b": 1}

    run_with_ingest(settings, scenario)


def test_the_same_webhook_id_from_another_signer_is_a_different_message(settings: Settings) -> None:
    async def scenario(ingest: PointIngest) -> None:
        for stream in ("a", "b"):
            await ingest.streams.upsert(stream, "tiny")
        first = await ingest.ingest(points("a", 0, 3), SIGNED, render)
        other = await ingest.ingest(points("b", 0, 4), MessageKey("isec_b", SIGNED.msg_id), render)
        assert not first.replayed and not other.replayed
        assert [json.loads(first.body), json.loads(other.body)] == [{"a": 3}, {"b": 4}]
        assert [(await ingest.streams.get(s)).point_count for s in ("a", "b")] == [3, 4]
        again = await ingest.ingest(points("b", 0, 4), MessageKey("isec_b", SIGNED.msg_id), render)
        assert again.replayed and again.body == other.body

    run_with_ingest(settings, scenario)


def stored_keys(store: IdempotencyStore) -> set[MessageKey]:
    with store.database.session() as session:
        query = select(InboundMessageRow.signer, InboundMessageRow.msg_id)
        return {MessageKey(signer, msg_id) for signer, msg_id in session.execute(query)}


def age(store: IdempotencyStore, keys: list[MessageKey], by: timedelta) -> None:
    with store.database.session() as session:
        for key in keys:
            session.execute(
                update(InboundMessageRow)
                .where(InboundMessageRow.signer == key.signer, InboundMessageRow.msg_id == key.msg_id)
                .values(created_at=utc_now() - by)
            )


def test_prune_deletes_answers_older_than_the_retention_in_batches(database: Database) -> None:
    store = IdempotencyStore(database)
    old = [MessageKey("isec_a", f"old_{i}") for i in range(PRUNE_BATCH + 3)]  # more than one batch
    fresh = [MessageKey("isec_a", "fresh"), MessageKey("isec_b", "old_0")]
    for key in old + fresh:
        assert store.try_claim(key) is True
        with database.session() as session:
            IdempotencyStore.complete(session, key, 200, "{}")
    age(store, old, RETENTION + timedelta(minutes=1))
    age(store, fresh[:1], RETENTION - timedelta(minutes=1))
    assert store.prune() == len(old)
    assert stored_keys(store) == set(fresh)
    assert store.prune() == 0


def test_a_claim_prunes_at_most_once_per_interval(settings: Settings) -> None:
    async def scenario(ingest: PointIngest) -> set[MessageKey]:
        store = ingest.idempotency
        await ingest.streams.upsert("a", "tiny")
        await ingest.ingest(points("a", 0, 1), MessageKey("isec_a", "m1"), render)  # prunes (nothing yet)
        age(store, [MessageKey("isec_a", "m1")], RETENTION + timedelta(seconds=1))
        await ingest.ingest(points("a", 1, 1), MessageKey("isec_a", "m2"), render)  # within the interval
        assert stored_keys(store) == {MessageKey("isec_a", "m1"), MessageKey("isec_a", "m2")}
        store._next_prune = float("-inf")  # the interval has passed
        await ingest.ingest(points("a", 2, 1), MessageKey("isec_a", "m3"), render)
        return stored_keys(store)

    assert run_with_ingest(settings, scenario) == {MessageKey("isec_a", "m2"), MessageKey("isec_a", "m3")}
