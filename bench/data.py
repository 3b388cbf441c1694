"""Training-data preparation speed: season detection and long-format preparation, by row count.

For each row count N:
* season: `detect_season` on an N-point random walk at minute frequency (the slowest frequency to check: the
  most natural periods, and an ACF up to N // 2 lags);
* long format: `prepare` of a long table of N rows (20 series of N / 20 hourly points, timestamps as strings,
  1 % of the values empty so gaps are filled).

Targets (formerly timed unit tests): season on 20,000 points under 0.5 s; long format on 200,000 rows under
2 s. Seconds are the median of `--repeat` runs.

    python bench/data.py [--rows 20000 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from app.training.data.prepared import prepare
from app.training.data.seasons import detect_season

SERIES = 20
TARGETS = {"season": (20_000, 0.5), "long format": (200_000, 2.0)}  # rows, seconds


def long_frame(rows: int, series: int = SERIES, seed: int = 7) -> pd.DataFrame:
    """`series` hourly series of rows // series points in long format, 1 % of the values empty."""
    rng = np.random.default_rng(seed)
    per_series = rows // series
    stamps = pd.date_range("2020-01-01", periods=per_series, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame(
        {
            "id": np.repeat([f"s{i:02d}" for i in range(series)], per_series),
            "timestamp": np.tile(stamps, series),
            "value": rng.normal(size=per_series * series),
        }
    )
    frame.loc[rng.choice(len(frame), len(frame) // 100, replace=False), "value"] = np.nan
    return frame


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(rows: int, repeat: int) -> tuple[float, float]:
    """(season seconds, long-format seconds) for `rows` rows."""
    walk = np.random.default_rng(6).normal(size=rows).cumsum()
    season = median_seconds(lambda: detect_season(walk, "min"), repeat)
    frame = long_frame(rows)
    long_format = median_seconds(lambda: prepare(frame, id_col="id", min_length=100), repeat)
    return season, long_format


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'rows':>9} | {'season s':>9} | {'long format s':>13}")
    for rows in args.rows:
        season, long_format = measure(rows, args.repeat)
        print(f"{rows:>9,} | {season:>9.3f} | {long_format:>13.3f}")
    for name, (rows, seconds) in TARGETS.items():
        print(f"target: {name} on {rows:,} rows under {seconds} s")


if __name__ == "__main__":
    main()
