"""The one scored-point type: a reading with its lead-1 expected value, band, score and timing.

The detector (`app.anomaly.detector.Detector`) makes one per reading, for streams and for batch detection alike;
the API schemas, the stored stream points and the webhook payloads are built from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Sampling = Literal["regular", "gap", "reanchored", "duplicate", "late", "missing"]
"""How a reading's timing was handled (see `app.anomaly.sampling`)."""


@dataclass(frozen=True)
class ScoredPoint:
    """One reading with its forecast band and anomaly score (score None while learning, or not scored)."""

    index: int  # position in the series or stream (0-based; a stream counts every reading ever appended)
    timestamp: datetime | None  # naive UTC; None for a batch series sent without timestamps
    value: float | None  # None: a missing reading
    expected: float | None
    lower: float | None
    upper: float | None
    score: float | None
    is_anomaly: bool
    direction: str | None  # "up" / "down" when anomalous, else None
    sampling: Sampling = "regular"
