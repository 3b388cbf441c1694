"""Per-key asyncio locks that exist only while someone holds or awaits them.

A plain `dict[key, Lock]` keeps one lock for every key ever used (every stream id a client tried, even ones
that 404), so memory grows with distinct ids. Here each entry counts its holders and waiters and is dropped
when the last one leaves, so an idle registry is empty. Everything runs on one event loop: the count changes
only between awaits, so no extra synchronisation is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders + waiters


class LockRegistry:
    """Mutual exclusion per string key; `len()` is the number of keys held or awaited right now."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold `key`'s lock for the block; the lock is created on first use and dropped after the last user."""
        entry = self._entries.setdefault(key, _Entry())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:  # also when the block raised or a waiter was cancelled
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    @asynccontextmanager
    async def hold_all(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold several keys at once, taken in sorted order: one global order, so no deadlock between callers."""
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self.hold(key))
            yield
