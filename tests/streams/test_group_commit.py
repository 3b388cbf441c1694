"""Group commit (app.streams.group_commit): concurrent writes share a transaction, each gets its own outcome."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from app.settings import Settings
from app.streams.group_commit import GroupWriter
from app.streams.service import StreamService

from .test_service import batch, outputs, run_with_service, settings  # noqa: F401 (the fixture)


class Store:
    """A stand-in transaction: all items or none; refuses negative items (like a moved revision)."""

    def __init__(self) -> None:
        self.transactions: list[list[int]] = []
        self.release = threading.Event()  # the first transaction waits for it, so others queue meanwhile

    def write(self, items: Sequence[int]) -> list[int]:
        if not self.transactions:
            self.release.wait(5)
        if any(item < 0 for item in items):
            self.transactions.append([])  # rolled back
            raise ValueError(f"refused {min(items)}")
        self.transactions.append(list(items))
        return [item * 10 for item in items]


def test_writes_arriving_meanwhile_share_one_transaction() -> None:
    async def scenario() -> tuple[list[int], list[list[int]]]:
        store = Store()
        writer: GroupWriter[int, int] = GroupWriter(store.write)
        first = asyncio.create_task(writer.submit(1))
        await asyncio.sleep(0.05)  # the first is being written alone
        rest = [asyncio.create_task(writer.submit(item)) for item in (2, 3, 4)]
        await asyncio.sleep(0.05)
        store.release.set()
        results = await asyncio.gather(first, *rest)
        return list(results), store.transactions

    results, transactions = asyncio.run(scenario())
    assert results == [10, 20, 30, 40]
    assert transactions == [[1], [2, 3, 4]]


def test_a_refused_item_fails_alone() -> None:
    async def scenario() -> tuple[list[int | BaseException], list[list[int]]]:
        store = Store()
        writer: GroupWriter[int, int] = GroupWriter(store.write)
        first = asyncio.create_task(writer.submit(1))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(writer.submit(item)) for item in (2, -3, 4)]
        await asyncio.sleep(0.05)
        store.release.set()
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        return list(results), store.transactions

    results, transactions = asyncio.run(scenario())
    assert results[:2] == [10, 20] and results[3] == 40
    assert isinstance(results[2], ValueError)
    # the group's transaction rolled back, then each item was written on its own
    assert transactions == [[1], [], [2], [], [4]]


def test_group_size_is_bounded() -> None:
    async def scenario() -> list[list[int]]:
        store = Store()
        writer: GroupWriter[int, int] = GroupWriter(store.write, max_group=2)
        first = asyncio.create_task(writer.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(writer.submit(item)) for item in range(1, 6)]
        await asyncio.sleep(0.05)
        store.release.set()
        await asyncio.gather(first, *rest)
        return store.transactions

    assert asyncio.run(scenario()) == [[0], [1, 2], [3, 4], [5]]


def test_a_lone_error_is_raised_to_its_submitter() -> None:
    async def scenario() -> None:
        store = Store()
        store.release.set()
        writer: GroupWriter[int, int] = GroupWriter(store.write)
        await writer.submit(-1)

    with pytest.raises(ValueError, match="refused -1"):
        asyncio.run(scenario())


@pytest.mark.slow
def test_concurrent_appends_store_and_score_like_one_at_a_time(settings: Settings) -> None:  # noqa: F811
    """Appends to several streams at once (group-committed together) store every point, and score each stream
    exactly as appending to it alone does."""

    async def scenario(service: StreamService) -> tuple[list[list[Any]], list[Any], list[int]]:
        streams = [f"g{number}" for number in range(6)]
        for stream_id in [*streams, "alone"]:
            await service.upsert(stream_id, None, learning_points=20)
        together: dict[str, list[Any]] = {stream_id: [] for stream_id in streams}
        for start in range(0, 60, 15):
            results = await asyncio.gather(
                *(service.append(stream_id, batch(start, 15)) for stream_id in streams)
            )
            for stream_id, result in zip(streams, results, strict=True):
                together[stream_id].extend(outputs(result))
        alone: list[Any] = []
        for start in range(0, 60, 15):
            alone.extend(outputs(await service.append("alone", batch(start, 15))))
        counts = [(await service.get(stream_id)).point_count for stream_id in streams]
        return list(together.values()), alone, counts

    together, alone, counts = run_with_service(settings, scenario)
    assert counts == [60] * 6
    assert all(points == alone for points in together)
