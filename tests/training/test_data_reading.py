"""`app.training.data.reading`: which files are read, and how unreadable ones are refused."""

import numpy as np
import pytest

from app.training.data.errors import DataValidationError
from app.training.data.reading import read_table

from .data_helpers import hourly


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.csv.gz", "d.tsv.gz", "d.parquet", "d.pq"])
def test_read_table_formats(tmp_path, name):
    frame = hourly(5)
    path = tmp_path / name
    if ".parquet" in name or name.endswith(".pq"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False, sep="\t" if ".tsv" in name else ",")
    table = read_table(path)
    assert list(table.columns) == ["timestamp", "value"]
    assert len(table) == 5
    assert np.allclose(table["value"].to_numpy(), frame["value"].to_numpy())


def test_read_table_semicolon_csv_and_bom(tmp_path):
    path = tmp_path / "euro.csv"
    path.write_bytes("\ufefftimestamp;value\n2020-01-01;1\n2020-01-02;2\n".encode())
    assert list(read_table(path).columns) == ["timestamp", "value"]


def test_read_table_unknown_extension(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(DataValidationError, match=r'data\.xlsx: unsupported file type "\.xlsx"'):
        read_table(path)


def test_read_table_missing_file(tmp_path):
    with pytest.raises(DataValidationError, match=r"nope\.csv not found"):
        read_table(tmp_path / "nope.csv")


def test_read_table_unreadable_parquet(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataValidationError, match=r"cannot read .*broken\.parquet as Parquet"):
        read_table(path)


def test_read_table_empty_and_corrupt_gzip(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataValidationError, match=r"empty\.csv is empty"):
        read_table(empty)
    corrupt = tmp_path / "bad.csv.gz"
    corrupt.write_bytes(b"definitely not gzip")
    with pytest.raises(DataValidationError, match=r"cannot read .*bad\.csv\.gz"):
        read_table(corrupt)
