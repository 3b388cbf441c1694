"""Azure's time grid: a granularity and a custom interval place every timestamp at an integer index from the
first one; a timestamp off that grid is refused (`InvalidSeries`, as Azure does), a missing index is a gap.

Fixed-length granularities (secondly to weekly, microsecond) are checked in whole microseconds; monthly and
yearly ones by calendar months: a reading must fall on the first one's day and time of day, a whole number of
intervals later.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from app.azure.errors import INVALID_SERIES, AzureError


class Granularity(StrEnum):
    YEARLY = "yearly"
    MONTHLY = "monthly"
    WEEKLY = "weekly"
    DAILY = "daily"
    HOURLY = "hourly"
    MINUTELY = "minutely"
    SECONDLY = "secondly"
    MICROSECOND = "microsecond"
    NONE = "none"


_STEPS: Final = {
    Granularity.WEEKLY: timedelta(weeks=1),
    Granularity.DAILY: timedelta(days=1),
    Granularity.HOURLY: timedelta(hours=1),
    Granularity.MINUTELY: timedelta(minutes=1),
    Granularity.SECONDLY: timedelta(seconds=1),
    Granularity.MICROSECOND: timedelta(microseconds=1),
}
_MONTHS: Final = {Granularity.MONTHLY: 1, Granularity.YEARLY: 12}


def grid_indexes(stamps: Sequence[datetime], granularity: Granularity, interval: int) -> list[int]:
    """Each (naive-UTC, strictly increasing) stamp's index on the grid from the first; AzureError when one is
    off the grid."""
    first = stamps[0]
    indexes = []
    for position, stamp in enumerate(stamps):
        index = _index(first, stamp, granularity, interval)
        if index is None:
            raise AzureError(
                INVALID_SERIES,
                f"the timestamp at index {position} is not on the {granularity.value} grid with an interval of "
                f"{interval} that starts at the first timestamp",
            )
        indexes.append(index)
    return indexes


def grid_stamp(first: datetime, index: int, granularity: Granularity, interval: int) -> datetime:
    """The timestamp of grid `index` (the inverse of `grid_indexes`)."""
    months = _MONTHS.get(granularity)
    if months is not None:
        return _add_months(first, index * interval * months)
    return first + _STEPS[granularity] * (index * interval)


def _index(first: datetime, stamp: datetime, granularity: Granularity, interval: int) -> int | None:
    months = _MONTHS.get(granularity)
    if months is not None:
        count = (stamp.year - first.year) * 12 + stamp.month - first.month
        step = interval * months
        on_grid = count % step == 0 and _add_months(first, count) == stamp
        return count // step if on_grid else None
    step_delta = _STEPS[granularity] * interval
    quotient, remainder = divmod(stamp - first, step_delta)
    return quotient if remainder == timedelta(0) else None


def _add_months(stamp: datetime, months: int) -> datetime:
    """`stamp` moved by whole months, its day clamped to the target month's last (Jan 31 + 1 month = Feb 28)."""
    total = stamp.month - 1 + months
    year, month = stamp.year + total // 12, total % 12 + 1
    return stamp.replace(year=year, month=month, day=min(stamp.day, calendar.monthrange(year, month)[1]))
