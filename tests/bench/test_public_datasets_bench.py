"""bench/public_datasets.py: every dataset loads into a file the product reads at the frequency the bench names
(half-hourly to yearly, one panel), and the table renders. Training them is the bench's job, not a test's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

pytest.importorskip("statsmodels", reason="the `bench` extra (pip install -e '.[bench]') is not installed")
pytest.importorskip("pmdarima", reason="the `bench` extra (pip install -e '.[bench]') is not installed")

from app.training.data.prepared import prepare  # noqa: E402
from bench.public_datasets import DATASETS, SERIES_COL, Result, table  # noqa: E402

EXPECTED = {  # name -> (frequency the product infers, series, points after gap filling)
    "taylor": ("30min", 1, 4032),
    "msft": ("B", 1, 8262),
    "co2": ("W-SAT", 1, 2284),
    "elnino": ("MS", 1, 732),
    "airpassengers": ("MS", 1, 144),
    "wineind": ("MS", 1, 176),
    "macrodata": ("QS", 8, 8 * 203),
    "sunspots": ("YS", 1, 309),
    "nile": ("YS", 1, 100),
}

pytestmark = pytest.mark.slow  # imports statsmodels and pmdarima, reads nine datasets


def test_the_datasets_span_half_hourly_to_yearly_with_a_panel() -> None:
    assert len(DATASETS) >= 8 and {d.name for d in DATASETS} == set(EXPECTED)
    for dataset in DATASETS:
        frame = dataset.load()
        id_col = SERIES_COL if SERIES_COL in frame.columns else None
        data = prepare(frame, id_col=id_col, min_length=10)
        shape = (data.frequency, len(data.series), sum(len(s.values) for s in data.series))
        assert shape == EXPECTED[dataset.name], dataset.name


def test_the_table_has_one_row_per_dataset_with_the_flag() -> None:
    row = Result("nile", "yearly (YS)", 1, 100, 4, 16, 130.0, 128.0, 128.3, 130.0 / 128.0, True,
                 ["seasonal_naive", "random_walk"], 1, 1.2, 6.5)  # fmt: skip
    lines = table([row, Result(**{**row.__dict__, "dataset": "co2", "flagged": False})]).splitlines()
    assert lines[0].split()[:3] == ["dataset", "frequency", "series"]
    assert lines[1].split()[0] == "nile" and " yes " in lines[1] and "1.016" in lines[1]
    assert lines[2].split()[0] == "co2" and " no " in lines[2]
