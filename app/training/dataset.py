"""All series of a training run laid end to end, with their forecast origins per split.

A global model trains on windows from every series; concatenating them lets one vectorised gather build a
batch from any mix of series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.forecasting.calendar import calendar_matrix
from app.forecasting.windows import SplitBounds


@dataclass(frozen=True)
class SeriesSlice:
    id: str
    offset: int
    bounds: SplitBounds


@dataclass(frozen=True)
class WindowDataset:
    values: np.ndarray  # [N_total] float32, every series end to end
    calendar: np.ndarray | None  # [N_total, C] float32
    series: list[SeriesSlice]
    window: int
    horizon: int

    @classmethod
    def build(
        cls,
        series: list[tuple[str, np.ndarray, np.ndarray]],
        bounds: list[SplitBounds],
        window: int,
        horizon: int,
        calendar_features: list[str],
    ) -> WindowDataset:
        slices, offset = [], 0
        for (series_id, values, _), split in zip(series, bounds, strict=True):
            slices.append(SeriesSlice(series_id, offset, split))
            offset += len(values)
        values = np.concatenate([values for _, values, _ in series]).astype(np.float32)
        calendar = None
        if calendar_features:
            calendar = np.concatenate([calendar_matrix(stamps, calendar_features) for _, _, stamps in series])
        return cls(values=values, calendar=calendar, series=slices, window=window, horizon=horizon)

    def origins(self, part: str) -> np.ndarray:
        """Global indices of the forecast origins of `part` across all series: [K]."""
        chunks = [s.offset + s.bounds.origins(part, self.window, self.horizon) for s in self.series]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)

    def series_of(self, origins: np.ndarray) -> np.ndarray:
        """Index of the series each global origin belongs to: [K] -> [K]."""
        starts = np.array([s.offset for s in self.series])
        return np.searchsorted(starts, origins, side="right") - 1

    def inputs(self, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Windows [K, L] (and calendar [K, L, C]) ending just before each origin."""
        index = origins[:, None] + np.arange(-self.window, 0)[None, :]  # [K, 1] + [1, L] -> [K, L]
        calendar = None if self.calendar is None else self.calendar[index]  # -> [K, L, C]
        return self.values[index], calendar

    def targets(self, origins: np.ndarray) -> np.ndarray:
        return self.values[origins[:, None] + np.arange(self.horizon)[None, :]]  # [K, 1] + [1, H] -> [K, H]

    def training_values(self) -> np.ndarray:
        return np.concatenate([self.values[s.offset : s.offset + s.bounds.train_end] for s in self.series])
