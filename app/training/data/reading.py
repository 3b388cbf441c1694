"""Reading a training file: .csv/.tsv (optionally .gz) or .parquet/.pq into a DataFrame."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from app.training.data.errors import DataValidationError

_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


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
