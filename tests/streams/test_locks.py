"""The per-stream lock registry: mutual exclusion per key, and no lock outlives its use (issue 13, item 6)."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import NotFoundError
from app.streams.locks import LockRegistry


def test_registry_is_empty_after_many_distinct_keys_even_when_the_block_raised() -> None:
    async def scenario() -> None:
        locks = LockRegistry()
        for index in range(5_000):
            if index % 2:
                with pytest.raises(NotFoundError):
                    async with locks.hold(f"missing-{index}"):
                        assert len(locks) == 1
                        raise NotFoundError(f"stream 'missing-{index}' does not exist")
            else:
                async with locks.hold(f"stream-{index}"):
                    await asyncio.sleep(0)
        assert len(locks) == 0

    asyncio.run(scenario())


def test_one_holder_at_a_time_under_contention() -> None:
    async def scenario() -> None:
        locks = LockRegistry()
        inside, peak, done = 0, 0, 0

        async def worker(key: str) -> None:
            nonlocal inside, peak, done
            async with locks.hold(key):
                inside += 1
                peak = max(peak, inside)
                await asyncio.sleep(0)  # let every other task try to get in
                await asyncio.sleep(0)
                inside -= 1
                done += 1

        await asyncio.gather(*(worker("same") for _ in range(200)))
        assert (peak, done, len(locks)) == (1, 200, 0)

    asyncio.run(scenario())


def test_different_keys_do_not_exclude_each_other() -> None:
    async def scenario() -> None:
        locks = LockRegistry()
        async with locks.hold("a"):
            async with asyncio.timeout(1):
                async with locks.hold("b"):
                    assert len(locks) == 2
        assert len(locks) == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        locks = LockRegistry()

        async def waiter() -> None:
            async with locks.hold("busy"):
                raise AssertionError("must not get the lock while it is held")

        async with locks.hold("busy"):
            task = asyncio.create_task(waiter())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(locks) == 1  # the holder's entry only
        assert len(locks) == 0

    asyncio.run(scenario())


def test_hold_all_takes_keys_in_sorted_order() -> None:
    async def scenario() -> None:
        locks = LockRegistry()
        async with locks.hold("b"):
            task = asyncio.create_task(_hold_all_briefly(locks, ["c", "a", "b"]))
            await asyncio.sleep(0.01)
            # "a" is taken, the batch waits on "b"; "c" is not touched before "b" (sorted order)
            assert len(locks) == 2 and not task.done()
        await asyncio.wait_for(task, 1)
        assert len(locks) == 0

    asyncio.run(scenario())


def test_opposite_batches_do_not_deadlock() -> None:
    async def scenario() -> None:
        locks = LockRegistry()
        forward = [f"s{index}" for index in range(10)]
        batches = [forward if index % 2 else forward[::-1] for index in range(100)]
        await asyncio.wait_for(asyncio.gather(*(_hold_all_briefly(locks, keys) for keys in batches)), 5)
        assert len(locks) == 0

    asyncio.run(scenario())


async def _hold_all_briefly(locks: LockRegistry, keys: list[str]) -> None:
    async with locks.hold_all(keys):
        await asyncio.sleep(0)
