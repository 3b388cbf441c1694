"""The one scored-point type: a value with its lead-1 forecast band and calibrated score.

Streams produce one per appended point; batch detection keeps the columnar form (`ScoredSeries` in
`app.serving.inference`, arrays per field) and materialises these only where per-point objects are needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ScoredPoint:
    """One point with its lead-1 forecast and calibrated score (None while the history fills)."""

    index: int  # position in the series or stream (0-based; a stream counts every point ever appended)
    timestamp: datetime | None  # naive UTC; None for a batch series sent without timestamps
    value: float
    expected: float | None
    lower: float | None
    upper: float | None
    score: float | None
    is_anomaly: bool
    direction: str | None  # "up" / "down" when anomalous, else None
