"""An Azure request's series, checked as Azure checks it and made ready for the detector.

Checks, in Azure's order and with its codes: 12 points at least (and at most the server's
`TSWATCH_MAX_DETECT_POINTS`, where Azure stops at 8,640), finite values of sane magnitude, timestamps present
(unless the granularity is `none`), strictly increasing and on the granularity's grid, and enough grid slots for
two requested periods. Gaps in the grid are imputed as asked (`previous`, `linear`, `fixed`, `zero`); `auto`
and `notFill` leave them to the detector, which widens its band over a gap (`app.anomaly.sampling`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from app.azure.errors import (
    BAD_ARGUMENT,
    INVALID_IMPUTE_FIXED_VALUE,
    INVALID_MODEL_ARGUMENT,
    INVALID_SERIES,
    AzureError,
)
from app.azure.grid import Granularity, grid_indexes, grid_stamp
from app.timestamps import MAX_TIMESTAMP, MIN_TIMESTAMP, to_naive_utc

MIN_POINTS: Final = 12
MAX_MAGNITUDE: Final = 1e100


class ImputeMode(StrEnum):
    AUTO = "auto"
    PREVIOUS = "previous"
    LINEAR = "linear"
    FIXED = "fixed"
    ZERO = "zero"
    NOT_FILL = "notFill"


_FILLED: Final = {ImputeMode.PREVIOUS, ImputeMode.LINEAR, ImputeMode.FIXED, ImputeMode.ZERO}


@dataclass(frozen=True)
class SeriesRequest:
    """The series part of a request, as sent (timestamps aware or naive, None when absent)."""

    timestamps: Sequence[datetime | None]
    values: Sequence[float]
    granularity: Granularity = Granularity.NONE
    custom_interval: int | None = None
    period: int | None = None
    impute_mode: ImputeMode | None = None
    impute_fixed_value: float | None = None


@dataclass(frozen=True)
class PreparedSeries:
    """What the detector reads (imputed readings included) and where the request's points are in it."""

    stamps: list[datetime] | None  # naive UTC; None when the granularity is `none`
    values: list[float]
    reported: list[int]  # positions of the request's points, in order
    granularity: Granularity


def prepare_series(request: SeriesRequest, limit: int) -> PreparedSeries:
    """The request's series checked (AzureError with Azure's code otherwise) and imputed as asked."""
    values = [float(value) for value in request.values]
    _check_size(len(values), limit)
    if any(abs(value) > MAX_MAGNITUDE for value in values):
        raise AzureError(INVALID_SERIES, "the magnitude of a value in 'series' is too large")
    if request.impute_mode is ImputeMode.FIXED and request.impute_fixed_value is None:
        raise AzureError(
            INVALID_IMPUTE_FIXED_VALUE, "imputeMode 'fixed' needs a number in 'imputeFixedValue'"
        )
    if request.granularity is Granularity.NONE:
        _check_period(request.period, len(values), len(values))
        return PreparedSeries(None, values, list(range(len(values))), request.granularity)
    stamps = _stamps(request.timestamps)
    indexes = grid_indexes(stamps, request.granularity, request.custom_interval or 1)
    slots = indexes[-1] + 1
    filled = request.impute_mode in _FILLED and slots > len(values)
    _check_period(request.period, slots, slots if filled else len(values))
    if not filled:
        return PreparedSeries(stamps, values, list(range(len(values))), request.granularity)
    _check_size(slots, limit, imputed=True)
    return _impute(request, stamps[0], indexes, values, slots)


def _check_size(points: int, limit: int, imputed: bool = False) -> None:
    if points < MIN_POINTS:
        raise AzureError(INVALID_SERIES, f"'series' must have at least {MIN_POINTS} points; it has {points}")
    if points > limit:
        what = "points once its gaps are imputed" if imputed else "points"
        raise AzureError(
            INVALID_SERIES,
            f"'series' has {points} {what}; this server detects at most {limit} per request "
            "(TSWATCH_MAX_DETECT_POINTS)",
        )


def _check_period(period: int | None, slots: int, points: int) -> None:
    if period is not None and min(slots, points) < 2 * period + 1:
        raise AzureError(
            INVALID_MODEL_ARGUMENT,
            f"'series' must cover more than two periods: period {period} needs at least {2 * period + 1} points",
        )


def _stamps(timestamps: Sequence[datetime | None]) -> list[datetime]:
    stamps = []
    for position, stamp in enumerate(timestamps):
        if stamp is None:
            raise AzureError(
                BAD_ARGUMENT,
                f"the point at index {position} of 'series' has no timestamp; send one per point, or "
                "granularity 'none'",
            )
        try:
            naive = to_naive_utc(stamp)
        except ValueError as error:
            raise AzureError(BAD_ARGUMENT, f"the timestamp at index {position}: {error}") from None
        if not MIN_TIMESTAMP <= naive < MAX_TIMESTAMP:
            raise AzureError(
                BAD_ARGUMENT,
                f"the timestamp at index {position} must lie in [{MIN_TIMESTAMP.isoformat()}, "
                f"{MAX_TIMESTAMP.isoformat()})",
            )
        stamps.append(naive)
    for position in range(1, len(stamps)):
        if stamps[position] == stamps[position - 1]:
            raise AzureError(INVALID_SERIES, f"'series' has a duplicated timestamp at index {position}")
        if stamps[position] < stamps[position - 1]:
            raise AzureError(
                INVALID_SERIES,
                f"'series' must be sorted by timestamp in ascending order; index {position} is earlier than "
                "the point before it",
            )
    return stamps


def _impute(
    request: SeriesRequest, first: datetime, indexes: list[int], values: list[float], slots: int
) -> PreparedSeries:
    """Every grid slot from the first to the last reading, the missing ones filled as `impute_mode` says."""
    fixed = request.impute_fixed_value if request.impute_mode is ImputeMode.FIXED else 0.0
    filled: list[float] = []
    for left, right, low, high in zip(indexes, indexes[1:], values, values[1:], strict=False):
        filled.append(low)
        for slot in range(left + 1, right):
            if request.impute_mode is ImputeMode.PREVIOUS:
                filled.append(low)
            elif request.impute_mode is ImputeMode.LINEAR:
                filled.append(low + (high - low) * (slot - left) / (right - left))
            else:
                filled.append(fixed or 0.0)
    filled.append(values[-1])
    granularity, interval = request.granularity, request.custom_interval or 1
    stamps = [grid_stamp(first, slot, granularity, interval) for slot in range(slots)]
    return PreparedSeries(stamps, filled, indexes, granularity)
