"""Bounded windows of recent numbers: `Ring` (insertion order) and `RankedRing` (also kept sorted).

Both keep at most `capacity` values, so their work per value is bounded whatever the length of a stream: O(1)
for `Ring`, O(log n) search plus a bounded list shift for `RankedRing`. Their JSON state is the values in
insertion order, packed as base64 float64 bytes (exact, and a fraction of the size and time of a JSON list).
"""

from __future__ import annotations

import base64
import bisect
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np


def pack(values: Iterable[float]) -> str:
    """Exact, compact text for a float sequence (base64 of little-endian float64)."""
    return base64.b64encode(np.fromiter(values, dtype="<f8").tobytes()).decode("ascii")


def unpack(text: str, name: str) -> list[float]:
    """The floats `pack` wrote; ValueError naming `name` when the text is not such a packing."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as error:
        raise ValueError(f"state[{name!r}] is not base64 text: {error}") from error
    if len(raw) % 8:
        raise ValueError(f"state[{name!r}] has {len(raw)} bytes, not a whole number of float64 values")
    return [float(x) for x in np.frombuffer(raw, dtype="<f8")]


class Ring:
    """The last `capacity` values in insertion order."""

    def __init__(self, capacity: int, values: Iterable[float] = ()) -> None:
        self.capacity = capacity
        self.values: deque[float] = deque(values, maxlen=capacity)

    def push(self, value: float) -> float | None:
        """Append `value`; the value it pushed out (None while not full)."""
        dropped = self.values[0] if len(self.values) == self.capacity else None
        self.values.append(value)
        return dropped

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[float]:
        return iter(self.values)

    def back(self, lag: int) -> float:
        """The value `lag` places before the newest (lag 0 = newest)."""
        return self.values[-1 - lag]

    def to_text(self) -> str:
        return pack(self.values)


class RankedRing(Ring):
    """A `Ring` that also keeps its values sorted, for ranks and quantiles of the recent window."""

    def __init__(self, capacity: int, values: Iterable[float] = ()) -> None:
        super().__init__(capacity, values)
        self.sorted: list[float] = sorted(self.values)

    def push(self, value: float) -> float | None:
        dropped = super().push(value)
        if dropped is not None:
            del self.sorted[bisect.bisect_left(self.sorted, dropped)]
        bisect.insort(self.sorted, value)
        return dropped

    def rank(self, value: float) -> float:
        """Mid-rank of `value` among the window, in (0, 1]: (below + (equal + 1) / 2) / n."""
        low = bisect.bisect_left(self.sorted, value)
        high = bisect.bisect_right(self.sorted, value)
        return (low + (high - low + 1) / 2.0) / len(self.sorted)

    def rank_below(self, value: float) -> float:
        """Mid-rank of `-value` among the negated window: how far down `value` lies, in (0, 1]."""
        low = bisect.bisect_left(self.sorted, value)
        high = bisect.bisect_right(self.sorted, value)
        return (len(self.sorted) - high + (high - low + 1) / 2.0) / len(self.sorted)

    def quantile(self, q: float) -> float:
        """The value at fraction `q` of the sorted window (nearest rank); the window must not be empty."""
        position = min(len(self.sorted) - 1, max(0, round(q * (len(self.sorted) - 1))))
        return self.sorted[position]
