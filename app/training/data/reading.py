"""Reading a training file: .csv/.tsv (optionally .gz) or .parquet/.pq into a DataFrame.

The CSV separator is the user's (`--sep`) or sniffed from the header line; the decimal mark is the user's
(`--decimal`, default "."). Parquet columns are typed, so neither applies to them.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from app.training.data.errors import DataValidationError

_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_SNIFFED = (",", ";", "\t", "|")
_DECIMALS = (".", ",")
_TAB_NAMES = {"tab": "\t", "\\t": "\t"}


@dataclass(frozen=True)
class ReadOptions:
    """How to read a text table: separator (None: sniffed), decimal mark, day-first dates (None: detected)."""

    sep: str | None = None
    decimal: str = "."
    dayfirst: bool | None = None


def read_table(path: Path, options: ReadOptions | None = None) -> pd.DataFrame:
    """Read .csv/.tsv (optionally .gz) or .parquet/.pq into a DataFrame; anything else is refused."""
    path = Path(path)
    options = options or ReadOptions()
    kind = _table_kind(path)
    if not path.exists():
        raise DataValidationError(f"data file {path} not found")
    if not path.is_file():
        raise DataValidationError(f"{path} is not a file")
    try:
        if kind in _PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        sep = _separator(path, kind, options)
        return pd.read_csv(path, sep=sep, decimal=options.decimal, encoding="utf-8-sig", low_memory=False)
    except DataValidationError:
        raise
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


def _separator(path: Path, kind: str, options: ReadOptions) -> str:
    """The user's separator ("tab" or a backslash-t for a tab), else the sniffed one; never the decimal mark."""
    if options.decimal not in _DECIMALS:
        raise DataValidationError(
            f'{path}: decimal mark "{options.decimal}" is not supported; use "." or ","'
        )
    sep = _TAB_NAMES.get(options.sep, options.sep) if options.sep is not None else None
    if sep is not None and len(sep) != 1:
        raise DataValidationError(f'{path}: separator "{options.sep}" must be one character (or "tab")')
    sep = sep if sep is not None else _sniff_separator(path, kind)
    if sep == options.decimal:
        given = "given" if options.sep is not None else "sniffed from the header line"
        raise DataValidationError(
            f'{path}: the separator ("{sep}", {given}) is also the decimal mark; files with decimal commas '
            f'separate columns with ";" or tabs: pass --sep ";" or --sep tab'
        )
    return sep


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
    counts = {sep: header.count(sep) for sep in _SNIFFED}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","
