"""The short-lived in-memory cache of key lookups, so serving a request costs no database round trip."""

from __future__ import annotations

import threading
import time
from enum import Enum
from typing import Final, Generic, TypeVar

T = TypeVar("T")


class Miss(Enum):
    """Returned by the `cached_*` methods when the answer is not in the cache (or has expired)."""

    MISS = "miss"


MISS: Final = Miss.MISS


class TtlCache(Generic[T]):
    """A tiny thread-safe TTL cache; bounded so that a flood of bogus keys cannot grow it without limit."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> T | Miss:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return MISS
        return entry[1]

    def put(self, key: str, value: T) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (now + self.ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
