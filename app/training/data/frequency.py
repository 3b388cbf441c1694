"""Frequency inference: the timestamp spacing every series of a file shares, named as a pandas alias.

The spacing is the median step of each series' timestamps (robust to gaps, unlike `pd.infer_freq`), then
named as a pandas offset alias ("30min", "h", "D", "W-MON", "MS", ...). Daily data that never falls on a
weekend (stock prices) becomes business days "B", so weekends are not gaps while holidays are. All series
of one file must share a frequency.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.training.data.errors import DataValidationError
from app.training.data.series import RawSeries

NS_PER_DAY = 86_400 * 10**9
_TIME_UNITS: tuple[tuple[str, int], ...] = (
    ("D", NS_PER_DAY),
    ("h", 3_600 * 10**9),
    ("min", 60 * 10**9),
    ("s", 10**9),
    ("ms", 10**6),
    ("us", 10**3),
    ("ns", 1),
)


def common_step(raw: list[RawSeries], source: str) -> int:
    """The median timestamp spacing (ns), which every series must share."""
    steps = {series_id: _median_step(ts) for series_id, ts, _v, _r in raw if len(ts) >= 2}
    if not steps:
        raise DataValidationError(
            f"{source}: cannot infer the frequency: every series has fewer than 2 timestamps; supply more data"
        )
    distinct = sorted(set(steps.values()))
    if len(distinct) > 1:
        a = next(k for k, v in steps.items() if v == distinct[0])
        b = next(k for k, v in steps.items() if v == distinct[1])
        raise DataValidationError(
            f'{source}: series "{a}" has frequency "{_fixed_alias(distinct[0])}" but series "{b}" has '
            f'"{_fixed_alias(distinct[1])}"; all series in one file must share a frequency — resample them or '
            f"split the file"
        )
    return distinct[0]


def _median_step(ts: np.ndarray) -> int:
    steps = np.diff(ts)
    middle = (len(steps) - 1) // 2  # lower median: always an observed spacing
    return int(np.partition(steps, middle)[middle])


def frequency_alias(step_ns: int, times: np.ndarray) -> str:
    """Name the spacing: calendar aliases for business days, weeks, months, quarters, years; else fixed."""
    index = pd.DatetimeIndex(times)
    days = step_ns / NS_PER_DAY
    if step_ns == NS_PER_DAY and _weekdays_only(index):
        return "B"
    if step_ns == 7 * NS_PER_DAY:
        weekday = index[0].day_name()[:3].upper()
        return "W" if weekday == "SUN" else f"W-{weekday}"
    for low, high, months in ((28, 31, 1), (89, 92, 3), (365, 366, 12)):
        if low <= days <= high:
            return _anchored_alias(index, months) or _fixed_alias(step_ns)
    return _fixed_alias(step_ns)


def _weekdays_only(index: pd.DatetimeIndex) -> bool:
    """Daily data without weekend dates over a span long enough to contain a weekend."""
    return bool((index.day_of_week < 5).all() and (index.max() - index.min()) >= pd.Timedelta(days=7))


def _anchored_alias(index: pd.DatetimeIndex, months: int) -> str | None:
    """Month, quarter or year alias ("MS", "QE-NOV", "YS", ...) when every date starts or ends a month."""
    if (index.day == 1).all():
        starts = True
    elif index.is_month_end.all():
        starts = False
    else:
        return None
    if months == 1:
        return "MS" if starts else "ME"
    month = int(index[0].month)
    if months == 3:
        anchor, prefix = ((month - 1) % 3 + 1, "QS") if starts else ((month - 1) % 3 + 10, "QE")
    else:
        anchor, prefix = (month, "YS") if starts else (month, "YE")
    name = pd.Timestamp(2000, anchor, 1).strftime("%b").upper()
    return prefix if name == ("JAN" if starts else "DEC") else f"{prefix}-{name}"


def _fixed_alias(step_ns: int) -> str:
    for unit, size in _TIME_UNITS:
        if step_ns % size == 0:
            count = step_ns // size
            return unit if count == 1 else f"{count}{unit}"
    return f"{step_ns}ns"
