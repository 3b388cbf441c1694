"""Checking a table's columns and parsing its cells into timestamps, values and series ids.

Time-zone-aware timestamps are converted to UTC and the zone dropped. Empty value cells become NaN (gaps, left
to `gaps`); anything else that is not a number or not a date is refused with its row and content.

Day and month (dates written like 03/04/2024, 03.04.2024 or 03-04-2024): `date_order` reads the column's
first two fields. A first field above 12 (with every second one at most 12) makes the column day-first, a
second field above 12 month-first, whatever the user said otherwise is refused; when every date reads both
ways the user's `--dayfirst/--no-dayfirst` decides (month-first when not given, and `DateOrder.ambiguous` lets
the caller name the format when the series then comes out unsorted or irregular).
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.training.data.errors import DataValidationError

DEFAULT_TIME_COL = "timestamp"
DEFAULT_VALUE_COL = "value"
_MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})
_DAY_MONTH = r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-]\d{2,4}(?:\D|$)"
_TZ_SUFFIX = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT)$"


def check_columns(frame: pd.DataFrame, wanted: list[str], source: str) -> None:
    """Every wanted column exists (else name the closest one) and no column is used twice."""
    available = [str(c) for c in frame.columns]
    for name in wanted:
        if name in frame.columns:
            continue
        message = (
            f'column "{name}" not found in {source}; available columns: {", ".join(available) or "(none)"}'
        )
        close = _closest_column(name, available)
        if close:
            message += f'; did you mean "{close}"?'
        raise DataValidationError(message)
    if len(set(wanted)) != len(wanted):
        raise DataValidationError(f"{source}: the time, value and id columns must differ, got {wanted}")


def _closest_column(name: str, available: list[str]) -> str | None:
    folded = {c.strip().lower(): c for c in available}
    if name.strip().lower() in folded:
        return folded[name.strip().lower()]
    matches = difflib.get_close_matches(name, available, n=1, cutoff=0.75)
    return matches[0] if matches else None


@dataclass(frozen=True)
class DateOrder:
    """How the day/month dates of a time column are read."""

    dayfirst: bool
    ambiguous: bool  # every date reads both ways and the user did not choose
    example: str  # a date that shows the order (the first one when ambiguous)
    detected: bool  # the order was read off the dates themselves

    def describe(self) -> str:
        return "day-first" if self.dayfirst else "month-first"


def date_order(column: pd.Series, name: str, source: str, dayfirst: bool | None = None) -> DateOrder | None:
    """The order of day and month in a column of dd/mm/yyyy-like dates; None for other columns (ISO dates)."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
        return None
    # the dates alone (the first 10 characters), once each: a few per day however many rows and series
    text = pd.Series(column.dropna().astype(str).str.strip().str[:10].unique())
    fields = text.str.extract(_DAY_MONTH).dropna()
    if fields.empty:
        return None
    first, second = fields[0].astype(int).to_numpy(), fields[1].astype(int).to_numpy()
    day_first, month_first = np.flatnonzero(first > 12), np.flatnonzero(second > 12)
    if len(day_first) and len(month_first):
        raise DataValidationError(
            f'{source}: column "{name}" mixes day-first dates ("{text[fields.index[day_first[0]]]}") and '
            f'month-first dates ("{text[fields.index[month_first[0]]]}"); write every date one way, e.g. '
            f"2024-01-13"
        )
    if len(day_first) or len(month_first):
        found = bool(len(day_first))
        example = str(text[fields.index[(day_first if found else month_first)[0]]])
        if dayfirst is not None and dayfirst != found:
            flag = "--dayfirst" if dayfirst else "--no-dayfirst"
            raise DataValidationError(
                f'{source}: column "{name}": {flag} was given but "{example}" can only be read '
                f"{'day-first' if found else 'month-first'}; drop the option"
            )
        return DateOrder(dayfirst=found, ambiguous=False, example=example, detected=True)
    example = str(text[fields.index[0]])
    return DateOrder(dayfirst=bool(dayfirst), ambiguous=dayfirst is None, example=example, detected=False)


def parse_times(column: pd.Series, name: str, source: str, dayfirst: bool = False) -> np.ndarray:
    """Timestamps as datetime64[ns], naive; tz-aware input converted to UTC; `dayfirst` reads 03/04 as 3 April."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        first = column.dropna().iloc[0] if column.notna().any() else "(empty)"
        raise DataValidationError(
            f'{source}: column "{name}" holds numbers (first: {first}), not dates; '
            f"write timestamps as dates like 2020-01-05 or 2020-01-05 13:30:00"
        )
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column):
        parsed = pd.Series(column)
    else:
        parsed = _parse_time_text(column, name, source, dayfirst)
    missing = parsed.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataValidationError(
            f'{source}: column "{name}" has {int(missing.sum())} empty timestamps, first at row {row + 1}; '
            f"every row needs a timestamp (leave the value empty instead to mark a missing point)"
        )
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    try:
        return parsed.to_numpy(dtype="datetime64[ns]")
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime) as exc:
        raise DataValidationError(f'{source}: column "{name}" has timestamps out of range: {exc}') from exc


def _parse_time_text(column: pd.Series, name: str, source: str, dayfirst: bool) -> pd.Series:
    column = column.reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(column, dayfirst=dayfirst)  # fast path: one consistent format, one zone
        except (ValueError, TypeError, OverflowError):
            pass
        parsed = pd.to_datetime(column, errors="coerce", utc=True, dayfirst=dayfirst)
        bad = (parsed.isna() & column.notna()).to_numpy()
        if bad.any():  # several formats in one column: parse the stragglers one by one
            parsed[bad] = pd.to_datetime(
                column[bad], errors="coerce", utc=True, format="mixed", dayfirst=dayfirst
            )
            bad = (parsed.isna() & column.notna()).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            f'{source}: column "{name}" has {int(bad.sum())} values that are not dates/times, first at row '
            f'{row + 1}: "{column.iloc[row]}"; use a format like 2020-01-05 13:30:00'
        )
    aware = column.astype(str).str.contains(_TZ_SUFFIX, regex=True, na=False).to_numpy()
    present = column.notna().to_numpy()
    if aware.any() and not aware[present].all():
        row = int(np.flatnonzero(present & ~aware)[0])
        raise DataValidationError(
            f'{source}: column "{name}" mixes timestamps with and without a time zone, first without at row '
            f'{row + 1}: "{column.iloc[row]}"; give every timestamp a UTC offset or none'
        )
    return parsed if aware.any() else parsed.dt.tz_localize(None)


def parse_values(column: pd.Series, name: str, source: str) -> np.ndarray:
    """Values as float64; empty cells become NaN (gaps), text that is not a number is an error."""
    if pd.api.types.is_bool_dtype(column):
        values = column.astype(float).to_numpy()
    elif pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    elif pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        raise DataValidationError(
            f'{source}: column "{name}" holds dates, not numbers; choose the value column'
        )
    else:
        values = _parse_numeric_text(column.reset_index(drop=True), name, source)
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise DataValidationError(
            f'{source}: column "{name}" has {int(infinite.sum())} infinite values, first at row {row + 1} '
            f"({values[row]}); replace them with real numbers or leave the cells empty"
        )
    return values


def _parse_numeric_text(column: pd.Series, name: str, source: str) -> np.ndarray:
    text = column.astype(str).str.strip()
    blank = text.str.lower().isin(_MISSING_TOKENS).to_numpy() | column.isna().to_numpy()
    numbers = pd.to_numeric(text.where(~blank), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(numbers) & ~blank
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        first = column.iloc[row]
        hint = (
            " (thousands separators are not supported; for decimal commas pass --decimal , with a --sep "
            "other than a comma)"
            if "," in str(first)
            else ""
        )
        raise DataValidationError(
            f'{source}: column "{name}" has {int(bad.sum())} non-numeric values, first at row {row + 1}: '
            f'"{first}"{hint}; fix them or leave the cells empty to mark missing points'
        )
    return numbers


def parse_ids(column: pd.Series, name: str, source: str) -> np.ndarray:
    """Series ids as strings (object array): 2 and "2" name the same series; empty ids are refused."""
    missing = column.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataValidationError(
            f'{source}: column "{name}" has {int(missing.sum())} empty series ids, first at row {row + 1}; '
            f"every row needs an id"
        )
    return column.astype(str).to_numpy(dtype=object)
