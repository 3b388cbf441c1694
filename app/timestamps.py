"""The one time module: every conversion between the product's timestamp forms lives here.

Inside tswatch a timestamp is a naive `datetime` in UTC (what the database stores). At the edges it is
an aware datetime (API input and output), an ISO 8601 string (JSON state and webhook payloads), a
`numpy.datetime64` (arrays handed to the forecaster) or an int64 nanosecond count (training data checks).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, overload

import numpy as np
import pandas as pd
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

MIN_TIMESTAMP = datetime(1678, 1, 1)
MAX_TIMESTAMP = datetime(2260, 1, 1)
_EPOCH = datetime(1970, 1, 1)


def utc_now() -> datetime:
    """The current time as naive UTC (the database's form)."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(stamp: datetime) -> datetime:
    """Naive UTC; a ValueError (a 422, not an OverflowError) when the offset moves it past year 1 or 9999."""
    if stamp.tzinfo is None:
        return stamp
    try:
        return stamp.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError(
            f"{stamp.isoformat()} is out of range in UTC; timestamps must lie in "
            f"[{MIN_TIMESTAMP.isoformat()}, {MAX_TIMESTAMP.isoformat()})"
        ) from None


def clamp_to_naive_utc(stamp: datetime) -> datetime:
    """Naive UTC for a bound (a `since` filter): a stamp beyond the calendar in UTC becomes its end."""
    try:
        return to_naive_utc(stamp)
    except ValueError:
        return datetime.min if stamp.year == datetime.min.year else datetime.max


@overload
def as_aware_utc(stamp: datetime) -> datetime: ...
@overload
def as_aware_utc(stamp: None) -> None: ...
@overload
def as_aware_utc(stamp: datetime | None) -> datetime | None: ...
def as_aware_utc(stamp: datetime | None) -> datetime | None:
    """A stored naive-UTC stamp as an aware UTC datetime (for API answers); None stays None."""
    return None if stamp is None else stamp.replace(tzinfo=UTC)


def to_state_iso(stamp: datetime) -> str:
    """A naive-UTC stamp as stored in JSON state (no zone suffix); `from_state_iso` reverses it."""
    return stamp.isoformat()


def from_state_iso(stamp: Any) -> datetime:
    """Parse a stamp written by `to_state_iso` (or any ISO 8601 string) back to a datetime."""
    return datetime.fromisoformat(str(stamp))


def from_epoch_seconds(seconds: float) -> datetime:
    """Seconds since 1970-01-01 (UTC; the detector's time axis) as naive UTC, to the microsecond."""
    return _EPOCH + timedelta(seconds=seconds)


def from_epoch_millis(millis: int) -> datetime:
    """Milliseconds since 1970-01-01 (UTC; Prometheus sample timestamps) as naive UTC, exactly; a ValueError
    when it lies outside [MIN_TIMESTAMP, MAX_TIMESTAMP)."""
    try:
        stamp = _EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        stamp = datetime.min
    if not MIN_TIMESTAMP <= stamp < MAX_TIMESTAMP:
        raise ValueError(
            f"{millis} ms since the epoch lies outside [{MIN_TIMESTAMP.isoformat()}, {MAX_TIMESTAMP.isoformat()})"
        )
    return stamp


def to_aware_utc(stamp: datetime) -> datetime:
    """Any datetime as aware UTC: a naive one is taken to be UTC already, an aware one is converted."""
    return as_aware_utc(to_naive_utc(stamp))


@overload
def to_iso_z(stamp: datetime | str) -> str: ...
@overload
def to_iso_z(stamp: None) -> None: ...
@overload
def to_iso_z(stamp: datetime | str | None) -> str | None: ...
def to_iso_z(stamp: datetime | str | None) -> str | None:
    """ISO 8601 UTC with a Z; accepts naive-UTC datetimes and ISO strings. None stays None."""
    if stamp is None:
        return None
    value = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)
    return to_naive_utc(value).isoformat() + "Z"


def to_iso_z_seconds(stamp: datetime | None) -> str | None:
    """ISO 8601 UTC to the second with a Z (the CLI's listings); None stays None."""
    return None if stamp is None else to_naive_utc(stamp).isoformat(timespec="seconds") + "Z"


def datetime64_to_naive(stamp: np.datetime64) -> datetime:
    """datetime64[ns] -> naive datetime (microsecond precision)."""
    value: datetime = stamp.astype("datetime64[us]").item()
    return value


def datetime64s_to_naive(values: np.ndarray) -> list[datetime]:
    """An array of datetime64 as naive (UTC) datetimes at microsecond precision, converted at once."""
    stamps: list[datetime] = values.astype("datetime64[us]").tolist()
    return stamps


def datetime64_to_iso(stamp: np.datetime64, unit: str | None = None) -> str:
    """numpy's ISO 8601 form of one stamp, no zone suffix (`2024-01-17T15:00:00.000000000` for [ns]), at its
    own precision or truncated to `unit` ("s"). What manifests store; `parse_pd_timestamp` reads it back."""
    return str(stamp) if unit is None else str(np.datetime_as_string(stamp.astype(f"datetime64[{unit}]")))


def parse_pd_timestamp(text: str | pd.Timestamp) -> pd.Timestamp:
    """A stamp written by `datetime64_to_iso` or `str(pd.Timestamp)` as a naive pandas Timestamp."""
    return pd.Timestamp(text)


PdTimestampText = Annotated[
    pd.Timestamp,
    PlainValidator(parse_pd_timestamp),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]
"""A pandas Timestamp that pydantic reads with `parse_pd_timestamp` and writes as `str(stamp)`
(`2024-01-05 04:00:00`), as manifests store the first filled gap of a series."""


def datetime64_to_aware_utc(values: np.ndarray) -> list[datetime]:
    """An array of datetime64 as aware UTC datetimes to the second (serialised like `datetime64_to_iso_z`)."""
    return [stamp.replace(tzinfo=UTC) for stamp in values.astype("datetime64[s]").tolist()]


def datetime64_to_iso_z(values: np.ndarray | None) -> list[str] | None:
    """An array of datetime64 as ISO 8601 strings to the second with a Z; None stays None."""
    return None if values is None else [str(np.datetime_as_string(v, unit="s")) + "Z" for v in values]


def ns_to_pd_timestamp(ns: int | np.integer[Any]) -> pd.Timestamp:
    """An int64 nanosecond stamp (the form training series are checked in) as a naive pandas Timestamp."""
    return pd.Timestamp(int(ns), unit="ns")


def to_message_text(value: pd.Timestamp | np.integer[Any] | int | None) -> str:
    """A stamp as error messages word it: 2020-01-05 for midnight, 2020-01-05 13:30 otherwise (seconds only
    when present); "-" for None."""
    if value is None:
        return "-"
    stamp = value if isinstance(value, pd.Timestamp) else ns_to_pd_timestamp(value)
    if stamp == stamp.normalize():
        return stamp.strftime("%Y-%m-%d")
    if stamp.second == 0 and stamp.microsecond == 0 and stamp.nanosecond == 0:
        return stamp.strftime("%Y-%m-%d %H:%M")
    return str(stamp)
