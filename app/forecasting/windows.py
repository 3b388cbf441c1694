"""Sliding windows over series, and the chronological split into train, validation and test origins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sliding_windows(values: np.ndarray, length: int) -> np.ndarray:
    """Every contiguous run of `length` items as a read-only view: [N, ...] -> [N - length + 1, length, ...]."""
    if length > len(values):
        raise ValueError(f"window length {length} exceeds the series length {len(values)}")
    view = np.lib.stride_tricks.sliding_window_view(values, length, axis=0)  # [N, ...] -> [W, ..., length]
    return np.moveaxis(view, -1, 1)  # -> [W, length, ...]


@dataclass(frozen=True)
class SplitBounds:
    """Row boundaries of one series: train [0, train_end), validation [train_end, val_end), test [val_end, N)."""

    train_end: int
    val_end: int
    length: int

    @classmethod
    def from_fractions(cls, length: int, val_fraction: float, test_fraction: float) -> SplitBounds:
        test_rows = round(length * test_fraction)
        val_rows = round(length * val_fraction)
        return cls(train_end=length - test_rows - val_rows, val_end=length - test_rows, length=length)

    def origins(self, part: str, window: int, horizon: int) -> np.ndarray:
        """Forecast origins t (the first forecast index) whose targets [t, t + horizon) lie inside `part`.

        Validation and test windows reach back `window` rows into the previous part for context.
        """
        start, end = {
            "train": (0, self.train_end),
            "val": (self.train_end, self.val_end),
            "test": (self.val_end, self.length),
        }[part]
        first = max(start, window)
        last = end - horizon
        return np.arange(first, last + 1) if last >= first else np.zeros(0, dtype=np.int64)
