"""bench/data.py still runs (on a small input): its table is where the data-preparation speed targets live."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.data import SERIES, long_frame, measure  # noqa: E402


def test_long_frame_shape() -> None:
    frame = long_frame(2_000)
    assert len(frame) == 2_000 and frame["id"].nunique() == SERIES
    assert int(frame["value"].isna().sum()) == 20


def test_measure_small_input() -> None:
    season, long_format = measure(4_000, repeat=1)
    assert season > 0 and long_format > 0
