"""Calendar features derived from timestamps: cyclic encodings chosen by the series' frequency."""

from __future__ import annotations

import numpy as np
import pandas as pd

CALENDAR_FEATURES: dict[str, tuple[str, float]] = {
    "hour_of_day": ("hour", 24.0),
    "day_of_week": ("day_of_week", 7.0),
    "day_of_year": ("day_of_year", 366.0),
    "month_of_year": ("month", 12.0),
}


def default_calendar_features(frequency: str) -> list[str]:
    """Features worth using at a frequency: time of day below a day, day of week below a week."""
    step = pd.tseries.frequencies.to_offset(frequency)
    if isinstance(step, pd.offsets.Tick):  # fixed-length steps (hours, minutes, ...)
        seconds = pd.Timedelta(step).total_seconds()
    else:  # calendar steps (days, business days, months, ...): their length from a fixed date
        seconds = (pd.Timestamp("2001-01-01") + step - pd.Timestamp("2001-01-01")).total_seconds()
    if seconds < 86_400:
        return ["hour_of_day", "day_of_week"]
    if seconds < 7 * 86_400:
        return ["day_of_week", "day_of_year"]
    return ["month_of_year"]


def calendar_matrix(timestamps: np.ndarray, features: list[str]) -> np.ndarray:
    """Sine/cosine encodings of `features` for `timestamps` [T] -> [T, 2 * len(features)] (float32)."""
    index = pd.DatetimeIndex(timestamps)
    columns = []
    for name in features:
        attribute, period = CALENDAR_FEATURES[name]
        raw = np.asarray(getattr(index, attribute), dtype=np.float64)
        if name == "hour_of_day":
            raw = raw + np.asarray(index.minute, dtype=np.float64) / 60.0
        angle = 2.0 * np.pi * raw / period
        columns.extend([np.sin(angle), np.cos(angle)])
    if not columns:
        return np.zeros((len(index), 0), dtype=np.float32)
    return np.stack(columns, axis=1).astype(np.float32)  # [T] x 2F -> [T, 2F]


def future_timestamps(last: np.datetime64, frequency: str, horizon: int) -> np.ndarray:
    """The `horizon` timestamps following `last` at `frequency`.

    Raises ValueError when they pass the latest datetime64[ns] (2262-04-11)."""
    start = pd.Timestamp(last)
    offset = pd.tseries.frequencies.to_offset(frequency)
    try:
        # from the first step on: a range from `last` itself would first roll an off-anchor stamp forward
        index = pd.date_range(start=start + offset, periods=horizon, freq=offset)
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        raise ValueError(
            f"{horizon} steps of {frequency!r} after {start.isoformat()} pass {pd.Timestamp.max.date()}, "
            "the latest representable timestamp"
        ) from None
    return index.values
