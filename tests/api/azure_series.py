"""Small synthetic series for the Azure-compatibility tests (seeded, hourly or daily, with a known anomaly)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

START = datetime(2024, 3, 1, tzinfo=UTC)


def stamps(count: int, step: timedelta = timedelta(hours=1)) -> list[datetime]:
    return [START + step * index for index in range(count)]


def daily_cycle(count: int, seed: int = 0, spike_at: int | None = None, spike: float = 12.0) -> list[float]:
    """A daily sine (amplitude 3 around 10) with noise, hourly; `spike` added at `spike_at`."""
    rng = random.Random(seed)
    values = [10.0 + 3.0 * math.sin(2 * math.pi * i / 24) + rng.gauss(0.0, 0.3) for i in range(count)]
    if spike_at is not None:
        values[spike_at] += spike
    return values


def level_shift(count: int, at: int, seed: int = 0, shift: float = 6.0) -> list[float]:
    """Noise around 10 that moves to 10 + `shift` from index `at` on."""
    rng = random.Random(seed)
    return [10.0 + rng.gauss(0.0, 0.5) + (shift if i >= at else 0.0) for i in range(count)]
