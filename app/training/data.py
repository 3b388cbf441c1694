"""Reading and validating training data: CSV/TSV/Parquet tables -> regular, gap-free, finite series.

Input is a table with a time column, a value column and optionally an id column (long format: one series per
id). `prepare` checks the table and refuses anything a model cannot learn from, with a message that names the
file, the column, the row or timestamp, and how to fix it. Row numbers in messages count data rows from 1 (a
CSV header line is not counted). Time-zone-aware timestamps are converted to UTC and the zone dropped.

Frequency: inferred per series from the median spacing of its timestamps (robust to gaps, unlike
`pd.infer_freq`), then named as a pandas offset alias ("30min", "h", "D", "W-MON", "MS", ...). Daily data
that never falls on a weekend (stock prices) becomes business days "B", so weekends are not gaps while
holidays are. All series of one file must share a frequency, and every timestamp must lie on the regular grid.

Gaps are missing timestamps on that grid plus empty/NaN values; leading and trailing empty values are
dropped first. `gap_policy` decides what happens to the rest:

* ``"interpolate"`` (default): insert the missing timestamps and fill values linearly in time between the
  neighbouring observations.
* ``"ffill"``: insert the missing timestamps and carry the last observed value forward.
* ``"error"``: refuse any gap.

Whatever the policy, a series whose filled points exceed `max_gap_fraction` of its length is refused: the
data needs fixing rather than inventing. Filled gaps are reported in `PreparedData.gaps`.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

GAP_POLICIES = ("interpolate", "ffill", "error")
_MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})
_TZ_SUFFIX = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT)$"
_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_NS_PER_DAY = 86_400 * 10**9
_TIME_UNITS = (("D", _NS_PER_DAY), ("h", 3_600 * 10**9), ("min", 60 * 10**9), ("s", 10**9))
_TIME_UNITS += (("ms", 10**6), ("us", 10**3), ("ns", 1))
_SEASON_THRESHOLD = 0.3
_SEASON_PROMINENCE = 0.1
_SEASON_Z = 1.96


class DataValidationError(ValueError):
    """The training data cannot be used; the message says where and how to fix it."""


@dataclass(frozen=True)
class SeriesData:
    id: str
    timestamps: np.ndarray  # datetime64[ns], strictly increasing, regular at the prepared frequency
    values: np.ndarray  # float64, finite

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class GapReport:
    """Points a series was missing and that the gap policy filled in.

    `missing_points` counts every filled point: timestamps absent from the data plus rows with an empty value.
    """

    series_id: str
    missing_points: int
    largest_gap: int  # longest run of consecutive filled points
    first_gap: pd.Timestamp | None  # first filled timestamp
    length: int  # points in the series after filling
    trimmed_points: int = 0  # leading/trailing rows with empty values that were dropped

    @property
    def fraction(self) -> float:
        return self.missing_points / self.length if self.length else 0.0

    def summary(self) -> str:
        text = f'series "{self.series_id}": '
        if self.missing_points:
            text += (
                f"filled {self.missing_points} missing points ({self.fraction:.1%}), largest gap "
                f"{self.largest_gap} points, first at {_fmt_time(self.first_gap)}"
            )
        else:
            text += "no gaps"
        if self.trimmed_points:
            text += f"; dropped {self.trimmed_points} leading/trailing rows without values"
        return text


@dataclass(frozen=True)
class PreparedData:
    series: list[SeriesData]
    frequency: str  # pandas offset alias, e.g. "h", "30min", "D", "B"
    gaps: list[GapReport]  # only series that had gaps or dropped edge rows
    fingerprint: str  # sha256 hex over ids, timestamps and values; stable across runs
    source_rows: int

    @property
    def total_points(self) -> int:
        return sum(len(s) for s in self.series)


# ----------------------------------------------------------------------------------------------- reading


def read_table(path: Path) -> pd.DataFrame:
    """Read .csv/.tsv (optionally .gz) or .parquet/.pq into a DataFrame; anything else is refused."""
    path = Path(path)
    kind = _table_kind(path)
    if not path.exists():
        raise DataValidationError(f"data file {path} not found")
    if not path.is_file():
        raise DataValidationError(f"{path} is not a file")
    try:
        if kind in _PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=_sniff_separator(path, kind), encoding="utf-8-sig", low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(f"{path} is empty: expected a header line and data rows") from exc
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"cannot read {path}: it is not UTF-8 text ({exc}); re-save it as UTF-8"
        ) from exc
    except Exception as exc:
        fmt = "Parquet" if kind in _PARQUET_SUFFIXES else kind.lstrip(".").upper()
        raise DataValidationError(f"cannot read {path} as {fmt}: {exc}") from exc


def _table_kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        kind = suffixes[-2] if len(suffixes) >= 2 else ""
        if kind in _CSV_SUFFIXES:
            return kind
    elif suffixes and (suffixes[-1] in _CSV_SUFFIXES or suffixes[-1] in _PARQUET_SUFFIXES):
        return suffixes[-1]
    shown = "".join(path.suffixes[-2:]) or "(none)"
    raise DataValidationError(
        f'cannot read {path}: unsupported file type "{shown}"; use .csv or .tsv (optionally .gz), '
        f"or .parquet/.pq"
    )


def _sniff_separator(path: Path, kind: str) -> str:
    """Tab for .tsv; for .csv the most frequent of , ; tab | in the header line (European CSVs use ;)."""
    if kind == ".tsv":
        return "\t"
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return ","  # let read_csv report the problem
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


# --------------------------------------------------------------------------------------------- preparing


def load_training_data(
    path: Path,
    *,
    time_col: str = "timestamp",
    value_col: str = "value",
    id_col: str | None = None,
    min_length: int,
    gap_policy: str = "interpolate",
    max_gap_fraction: float = 0.2,
    source: str | None = None,
) -> PreparedData:
    """`read_table` + `prepare`; messages name the file as given."""
    return prepare(
        read_table(path),
        time_col=time_col,
        value_col=value_col,
        id_col=id_col,
        min_length=min_length,
        gap_policy=gap_policy,
        max_gap_fraction=max_gap_fraction,
        source=source if source is not None else str(path),
    )


def prepare(
    frame: pd.DataFrame,
    *,
    time_col: str = "timestamp",
    value_col: str = "value",
    id_col: str | None = None,
    min_length: int,
    gap_policy: str = "interpolate",
    max_gap_fraction: float = 0.2,
    source: str = "<data>",
) -> PreparedData:
    """Validate `frame` and turn it into regular, gap-filled series (see the module docstring)."""
    _check_options(gap_policy, max_gap_fraction, source)
    _check_columns(frame, [time_col, value_col] + ([id_col] if id_col else []), source)
    if frame.empty:
        raise DataValidationError(f"{source}: no data rows (only a header)")
    times = _parse_times(frame[time_col], time_col, source)
    values = _parse_values(frame[value_col], value_col, source)
    ids = (
        _parse_ids(frame[id_col], id_col, source)
        if id_col
        else np.full(len(frame), str(value_col), dtype=object)
    )

    raw = _split_series(ids, times, values)
    for series_id, ts, _vals, rows in raw:
        _check_order(series_id, ts, rows, source)
    step_ns = _common_step(raw, source)
    frequency = _frequency_alias(step_ns, times)

    series: list[SeriesData] = []
    gaps: list[GapReport] = []
    for series_id, ts, vals, rows in raw:
        filled, report = _fill_series(
            series_id, ts, vals, rows, frequency, gap_policy, max_gap_fraction, source
        )
        _check_length(filled, min_length, source)
        _check_not_constant(filled, source)
        series.append(filled)
        if report.missing_points or report.trimmed_points:
            gaps.append(report)
    return PreparedData(
        series=series,
        frequency=frequency,
        gaps=gaps,
        fingerprint=fingerprint(series),
        source_rows=len(frame),
    )


def fingerprint(series: list[SeriesData]) -> str:
    """sha256 over ids, int64 ns timestamps and float64 values (little-endian, -0.0 folded into 0.0)."""
    digest = hashlib.sha256(b"tswatch-series-v1\0")
    for item in series:
        name = item.id.encode("utf-8")
        digest.update(len(name).to_bytes(8, "little") + name + len(item.values).to_bytes(8, "little"))
        digest.update(np.ascontiguousarray(item.timestamps.astype("datetime64[ns]").view("<i8")).tobytes())
        digest.update(np.ascontiguousarray(np.asarray(item.values, dtype="<f8") + 0.0).tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------- column checks


def _check_options(gap_policy: str, max_gap_fraction: float, source: str) -> None:
    if gap_policy not in GAP_POLICIES:
        options = ", ".join(f'"{p}"' for p in GAP_POLICIES)
        raise DataValidationError(f'{source}: unknown gap policy "{gap_policy}"; choose one of {options}')
    if not 0.0 <= max_gap_fraction <= 1.0:
        raise DataValidationError(
            f"{source}: max_gap_fraction must be between 0 and 1, got {max_gap_fraction}"
        )


def _check_columns(frame: pd.DataFrame, wanted: list[str], source: str) -> None:
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


def _parse_times(column: pd.Series, name: str, source: str) -> np.ndarray:
    """Timestamps as datetime64[ns], naive; tz-aware input converted to UTC."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        first = column.dropna().iloc[0] if column.notna().any() else "(empty)"
        raise DataValidationError(
            f'{source}: column "{name}" holds numbers (first: {first}), not dates; '
            f"write timestamps as dates like 2020-01-05 or 2020-01-05 13:30:00"
        )
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column):
        parsed = pd.Series(column)
    else:
        parsed = _parse_time_text(column, name, source)
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


def _parse_time_text(column: pd.Series, name: str, source: str) -> pd.Series:
    column = column.reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(column)  # fast path: one consistent format, one zone
        except (ValueError, TypeError, OverflowError):
            pass
        parsed = pd.to_datetime(column, errors="coerce", utc=True)
        bad = (parsed.isna() & column.notna()).to_numpy()
        if bad.any():  # several formats in one column: parse the stragglers one by one
            parsed[bad] = pd.to_datetime(column[bad], errors="coerce", utc=True, format="mixed")
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


def _parse_values(column: pd.Series, name: str, source: str) -> np.ndarray:
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
        hint = " (thousands separators and decimal commas are not supported)" if "," in str(first) else ""
        raise DataValidationError(
            f'{source}: column "{name}" has {int(bad.sum())} non-numeric values, first at row {row + 1}: '
            f'"{first}"{hint}; fix them or leave the cells empty to mark missing points'
        )
    return numbers


def _parse_ids(column: pd.Series, name: str, source: str) -> np.ndarray:
    missing = column.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataValidationError(
            f'{source}: column "{name}" has {int(missing.sum())} empty series ids, first at row {row + 1}; '
            f"every row needs an id"
        )
    return column.astype(str).to_numpy(dtype=object)


# ----------------------------------------------------------------------------------------- series checks

_RawSeries = tuple[str, np.ndarray, np.ndarray, np.ndarray]  # id, int64 ns timestamps, values, row positions


def _split_series(ids: np.ndarray, times: np.ndarray, values: np.ndarray) -> list[_RawSeries]:
    """Group rows by id (sorted ids, original row order kept within a series)."""
    codes, uniques = pd.factorize(ids, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    ts = times.view("i8")[order]
    vals = values[order]
    return [
        (str(uniques[i]), t, v, r)
        for i, (t, v, r) in enumerate(
            zip(np.split(ts, bounds), np.split(vals, bounds), np.split(order, bounds), strict=True)
        )
    ]


def _check_order(series_id: str, ts: np.ndarray, rows: np.ndarray, source: str) -> None:
    """Timestamps must be strictly increasing in file order: unsorted data is refused, not silently sorted."""
    steps = np.diff(ts)
    bad = np.flatnonzero(steps <= 0)
    if not len(bad):
        return
    i = int(bad[np.argmin(rows[bad + 1])])  # the earliest offending row in the file
    earlier, later = _fmt_time(ts[i]), _fmt_time(ts[i + 1])
    if steps[i] == 0:
        raise DataValidationError(
            f'{source}: duplicate timestamp {later} in series "{series_id}" (rows {rows[i] + 1} and '
            f"{rows[i + 1] + 1}); keep one row per timestamp (aggregate or remove duplicates)"
        )
    raise DataValidationError(
        f'{source}: series "{series_id}": timestamps are not sorted: row {rows[i + 1] + 1} ({later}) comes '
        f"after {earlier} (row {rows[i] + 1}); {_plural(int((steps < 0).sum()), 'row')} out of order — sort "
        f"the file by time"
    )


def _common_step(raw: list[_RawSeries], source: str) -> int:
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


def _frequency_alias(step_ns: int, times: np.ndarray) -> str:
    """Name the spacing: calendar aliases for business days, weeks, months, quarters, years; else fixed."""
    index = pd.DatetimeIndex(times)
    days = step_ns / _NS_PER_DAY
    if step_ns == _NS_PER_DAY and _weekdays_only(index):
        return "B"
    if step_ns == 7 * _NS_PER_DAY:
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


# ------------------------------------------------------------------------------------------ gap filling


def _fill_series(
    series_id: str,
    ts: np.ndarray,
    vals: np.ndarray,
    rows: np.ndarray,
    frequency: str,
    gap_policy: str,
    max_gap_fraction: float,
    source: str,
) -> tuple[SeriesData, GapReport]:
    present = np.flatnonzero(~np.isnan(vals))
    if not len(present):
        raise DataValidationError(
            f'{source}: series "{series_id}" has no values (all {len(vals)} rows are empty); fill or remove it'
        )
    first, last = int(present[0]), int(present[-1])
    trimmed = first + len(vals) - 1 - last
    ts, vals, rows = ts[first : last + 1], vals[first : last + 1], rows[first : last + 1]
    grid = pd.date_range(_timestamp(ts[0]), _timestamp(ts[-1]), freq=frequency).as_unit("ns").asi8
    full = np.full(len(grid), np.nan)
    full[_grid_positions(series_id, ts, rows, grid, frequency, source)] = vals
    missing = np.isnan(full)
    report = _gap_report(series_id, missing, grid, trimmed)
    _check_gaps(report, gap_policy, max_gap_fraction, frequency, source)
    if report.missing_points:
        full = _interpolate(full, missing, grid) if gap_policy == "interpolate" else _ffill(full, missing)
    return SeriesData(id=series_id, timestamps=grid.view("datetime64[ns]"), values=full), report


def _grid_positions(
    series_id: str, ts: np.ndarray, rows: np.ndarray, grid: np.ndarray, frequency: str, source: str
) -> np.ndarray:
    positions = np.searchsorted(grid, ts)
    inside = positions < len(grid)
    on_grid = inside & (grid[np.minimum(positions, len(grid) - 1)] == ts)
    if not on_grid.all():
        i = int(np.flatnonzero(~on_grid)[0])
        raise DataValidationError(
            f'{source}: series "{series_id}": timestamp {_fmt_time(ts[i])} (row {rows[i] + 1}) is off the '
            f'regular "{frequency}" grid starting at {_fmt_time(grid[0] if len(grid) else ts[0])}; '
            f"resample the data to a fixed interval first"
        )
    return positions


def _gap_report(series_id: str, missing: np.ndarray, grid: np.ndarray, trimmed: int) -> GapReport:
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return GapReport(
        series_id=series_id,
        missing_points=int(missing.sum()),
        largest_gap=int((ends - starts).max()) if len(starts) else 0,
        first_gap=_timestamp(grid[starts[0]]) if len(starts) else None,
        length=len(grid),
        trimmed_points=trimmed,
    )


def _check_gaps(
    report: GapReport, gap_policy: str, max_gap_fraction: float, frequency: str, source: str
) -> None:
    if not report.missing_points:
        return
    where = (
        f"{_plural(report.missing_points, 'missing point')} (at {frequency!r} spacing; largest gap "
        f"{_plural(report.largest_gap, 'point')}, first at {_fmt_time(report.first_gap)})"
    )
    if gap_policy == "error":
        raise DataValidationError(
            f'{source}: series "{report.series_id}" has {where} and the gap policy is "error"; fill the gaps '
            f'in the data or use gap policy "interpolate" or "ffill"'
        )
    if report.fraction > max_gap_fraction:
        raise DataValidationError(
            f'{source}: series "{report.series_id}" is {report.fraction:.1%} gaps: {where} in '
            f"{report.length} points, more than the {max_gap_fraction:.0%} allowed; fix the data (or check "
            f"the frequency {frequency!r} is the one you expect)"
        )


def _interpolate(full: np.ndarray, missing: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear in time (not in position: a business-day holiday after a weekend weighs the weekend)."""
    filled = full.copy()
    x = grid.astype(np.float64)
    filled[missing] = np.interp(x[missing], x[~missing], full[~missing])
    return filled


def _ffill(full: np.ndarray, missing: np.ndarray) -> np.ndarray:
    last_seen = np.maximum.accumulate(np.where(missing, 0, np.arange(len(full))))
    return full[last_seen]


def _check_length(series: SeriesData, min_length: int, source: str) -> None:
    if len(series.values) < min_length:
        raise DataValidationError(
            f'{source}: series "{series.id}" has {len(series.values)} points after gap filling but window + '
            f"horizon needs {min_length}; lower --window/--horizon or supply more data"
        )


def _check_not_constant(series: SeriesData, source: str) -> None:
    if len(series.values) and np.ptp(series.values) == 0:
        raise DataValidationError(
            f'{source}: series "{series.id}" is constant (every value is {series.values[0]}): nothing to learn'
        )


# ------------------------------------------------------------------------------------------- seasonality


def detect_season(values: np.ndarray, frequency: str, max_lag: int | None = None) -> int:
    """Dominant seasonal period in steps, or 1 when there is none.

    Uses the autocorrelation of the linearly detrended series (not differenced: differencing buries smooth
    seasonal patterns under noise). A lag counts only if it is a local ACF peak, its ACF exceeds 0.3, it rises
    at least 0.1 above the lowest ACF at shorter lags (rejects the slowly decaying ACF of random walks such as
    prices), and it is significant by Bartlett's formula (rejects chance bumps at long lags). Periods natural
    for the frequency (24 and 168 for hourly data, ...) are tried first; otherwise the strongest peak in
    [2, max_lag] wins. At least two full periods are required, so max_lag defaults to len(values) // 2.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    limit = len(x) // 2 if max_lag is None else min(int(max_lag), len(x) // 2)
    if limit < 2:
        return 1
    acf = _autocorrelation(x, limit + 1)
    if acf is None:
        return 1
    qualifies = _season_qualifies(acf, len(x))
    natural = [
        p for p in natural_periods(frequency) if 2 <= p <= limit and qualifies[p] and _near_peak(acf, p)
    ]
    if natural:
        return int(max(natural, key=lambda p: acf[p]))
    inner = acf[1:-1]
    peaks = np.flatnonzero(qualifies[1:-1] & (inner >= acf[:-2]) & (inner >= acf[2:])) + 1
    peaks = peaks[peaks >= 2]
    return int(peaks[np.argmax(acf[peaks])]) if len(peaks) else 1


def natural_periods(frequency: str) -> list[int]:
    """Season lengths worth checking first at a frequency: a day, a week, a year, ... in steps."""
    offset = pd.tseries.frequencies.to_offset(frequency)
    code = offset.rule_code.upper()
    if code == "B":
        return [5, 260] if offset.n == 1 else []
    if code.startswith("W"):
        return [52] if offset.n == 1 else []
    if code in {"MS", "ME", "M", "BMS", "BME"}:
        return [12 // offset.n] if 12 % offset.n == 0 and offset.n < 12 else []
    if code.startswith("Q"):
        return [4] if offset.n == 1 else []
    try:
        step = pd.Timedelta(offset).value
    except ValueError:
        return []
    if step <= 0:
        return []
    periods = []
    for unit_ns, minimum in ((60 * 10**9, 12), (3_600 * 10**9, 12), (_NS_PER_DAY, 2), (7 * _NS_PER_DAY, 2)):
        if unit_ns % step == 0 and unit_ns // step >= minimum:
            periods.append(unit_ns // step)
    if step % _NS_PER_DAY == 0 and (365 * _NS_PER_DAY) % step == 0:
        periods.append(365 * _NS_PER_DAY // step)
    return periods


def _autocorrelation(x: np.ndarray, lags: int) -> np.ndarray | None:
    """Biased ACF (divides by n, so long lags are damped) via FFT; None for a flat series."""
    t = np.arange(len(x), dtype=np.float64)
    slope, intercept = np.polyfit(t, x, 1)
    resid = x - (slope * t + intercept)
    size = 1 << int(np.ceil(np.log2(2 * len(x))))
    spectrum = np.fft.rfft(resid, size)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), size)[:lags]
    if acov[0] <= 1e-12 * max(1.0, float(np.mean(x**2))):
        return None
    return acov / acov[0]


def _season_qualifies(acf: np.ndarray, n: int) -> np.ndarray:
    """Per lag: ACF above the threshold, prominent over shorter lags, and significant (Bartlett)."""
    squares = np.cumsum(acf**2) - 1.0  # squares[k] = sum of acf[1..k]^2
    earlier_sq = np.concatenate(([0.0, 0.0], squares[1:-1]))  # sum over acf[1..lag-1]
    earlier_min = np.concatenate(([np.inf, np.inf], np.minimum.accumulate(acf[1:-1])))  # min of acf[1..lag-1]
    bartlett = _SEASON_Z * np.sqrt((1.0 + 2.0 * earlier_sq) / n)
    return (acf >= _SEASON_THRESHOLD) & (acf - earlier_min >= _SEASON_PROMINENCE) & (acf > bartlett)


def _near_peak(acf: np.ndarray, lag: int) -> bool:
    """A natural period may sit a step or so off the exact ACF maximum (e.g. 260 business days a year)."""
    width = max(1, lag // 20)
    return bool(acf[lag] >= acf[max(1, lag - width) : lag + width + 1].max() - 0.02)


# ------------------------------------------------------------------------------------------------ helpers


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _timestamp(ns: int | np.integer) -> pd.Timestamp:
    return pd.Timestamp(int(ns), unit="ns")


def _fmt_time(value: pd.Timestamp | np.integer | int | None) -> str:
    """2020-01-05 for midnight, 2020-01-05 13:30 otherwise (seconds only when present)."""
    if value is None:
        return "-"
    stamp = value if isinstance(value, pd.Timestamp) else _timestamp(value)
    if stamp == stamp.normalize():
        return stamp.strftime("%Y-%m-%d")
    if stamp.second == 0 and stamp.microsecond == 0 and stamp.nanosecond == 0:
        return stamp.strftime("%Y-%m-%d %H:%M")
    return str(stamp)
