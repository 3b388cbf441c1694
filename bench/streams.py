"""Per-point cost of StreamScorer (one network step per point, re-anchor every window) for window 32 vs 512,
next to re-running the whole window per point (what batch detection does). Random-weight networks.

Run: /work/venv/bin/python bench/streams.py
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import numpy as np
import torch

from app.anomaly import ConformalCalibrator
from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import NetworkConfig
from app.forecasting.quantiles import DEFAULT_QUANTILES
from app.forecasting.scaling import Scaling
from app.streams.scoring import StreamScorer


def forecaster(window: int) -> Forecaster:
    spec = ForecasterSpec(
        window=window,
        horizon=24,
        frequency="h",
        scaling=Scaling("instance", 0.0, 1.0, 1e-6),
        network=NetworkConfig("gru", 1, 64, 2, 24, len(DEFAULT_QUANTILES)),
        calendar_features=("hour_of_day", "day_of_week"),
    )
    return Forecaster.create(spec, seed=0)


def series(points: int) -> tuple[list[datetime], np.ndarray]:
    rng = np.random.default_rng(0)
    hours = np.arange(points)
    start = datetime(2024, 1, 1)
    return [start + timedelta(hours=int(h)) for h in hours], 10 + 3 * np.sin(hours / 24 * 6.28) + rng.normal(
        0, 0.3, points
    )


def stream_cost(model: Forecaster, measured: int) -> float:
    window = model.spec.window
    calibrator = ConformalCalibrator().fit(np.abs(np.random.default_rng(1).normal(size=2000)))
    scorer = StreamScorer(model, calibrator, 0.5)
    stamps, values = series(window + measured)
    for stamp, value in zip(stamps[:window], values[:window], strict=True):
        scorer.append(stamp, float(value))
    start = time.perf_counter()
    for stamp, value in zip(stamps[window:], values[window:], strict=True):
        scorer.append(stamp, float(value))
    return (time.perf_counter() - start) / measured


def rerun_cost(model: Forecaster, repeats: int = 50) -> float:
    window = model.spec.window
    stamps, values = series(window)
    calendar = model.calendar(np.array(stamps, dtype="datetime64[ns]"))[None]
    start = time.perf_counter()
    for _ in range(repeats):
        model.predict(values[None], calendar)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'window':>6} | {'stream us/point (amortised)':>28} | {'re-run window us/point':>22}")
    for window in (32, 512):
        model = forecaster(window)
        measured = 4 * window if window <= 64 else 2 * window  # whole anchor periods
        stream = stream_cost(model, measured)
        rerun = rerun_cost(model)
        print(f"{window:>6} | {stream * 1e6:>28.0f} | {rerun * 1e6:>22.0f}")


if __name__ == "__main__":
    main()
