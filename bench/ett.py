"""ETTh1 univariate (OT) benchmark under the standard protocol, next to seasonal naive and published rows.

Protocol (../shared/data/README.md): rows [0, 8640) train, [8640, 11520) validation, [11520, 14400) test,
z-scored with the training rows' statistics; MSE/MAE on scaled values over every test origin and step.

    python bench/ett.py [--data ../shared/data/ett] [--horizons 24 96] [--seeds 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.metrics import seasonal_naive_forecast
from app.forecasting.network import NetworkConfig
from app.forecasting.scaling import Scaling
from app.forecasting.windows import SplitBounds
from app.training.config import TrainingConfig
from app.training.dataset import WindowDataset
from app.training.evaluation import predict_origins
from app.training.trainer import fit

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ett"
TRAIN_END, VAL_END, TEST_END = 8640, 11520, 14400
SEASON = 24


@dataclass(frozen=True)
class Setup:
    """The configuration per horizon: patches shorten the recurrence; normalisation per the ETT notes."""

    window: int
    patch_len: int
    normalisation: str


SETUPS = {24: Setup(336, 24, "last"), 48: Setup(336, 24, "last"), 96: Setup(336, 24, "instance")}


def load_ot(data_dir: Path) -> np.ndarray:
    frame = pd.read_csv(data_dir / "ETTh1.csv")
    values = frame["OT"].to_numpy(dtype=np.float64)[:TEST_END]
    train = values[:TRAIN_END]
    return (values - train.mean()) / train.std(ddof=0)


def published(data_dir: Path, horizon: int) -> list[tuple[str, float, float]]:
    path = data_dir / "published_univariate.csv"
    if not path.exists():
        return []
    rows = []
    with open(path) as handle:
        for row in csv.DictReader(handle):
            if row.get("dataset", "ETTh1") == "ETTh1" and int(float(row.get("horizon", -1))) == horizon:
                rows.append((row.get("model", "?"), float(row["mse"]), float(row["mae"])))
    return rows


def run(values: np.ndarray, horizon: int, seed: int, threads: int) -> tuple[float, float, float]:
    torch.set_num_threads(threads)
    setup = SETUPS.get(horizon, Setup(336, 48, "instance"))
    config = TrainingConfig(
        window=setup.window, horizon=horizon, hidden=128, layers=1, dropout=0.0, patch_len=setup.patch_len,
        normalisation=setup.normalisation, epochs=30, batch_size=128, lr=1e-3, patience=4, seed=seed,
    )  # fmt: skip
    bounds = SplitBounds(train_end=TRAIN_END, val_end=VAL_END, length=TEST_END)
    dataset = WindowDataset.build([("OT", values, np.zeros(0))], [bounds], config.window, horizon, [])
    spec = ForecasterSpec(
        window=config.window,
        horizon=horizon,
        frequency="h",
        scaling=Scaling.fit(config.normalisation, torch.from_numpy(dataset.training_values())),
        network=NetworkConfig(
            "gru", config.patch_len, config.hidden, config.layers, horizon, len(config.quantiles)
        ),
        patch_len=config.patch_len,
        quantiles=config.quantiles,
    )
    forecaster = Forecaster.create(spec, seed=seed)
    started = time.perf_counter()
    fit(forecaster, dataset, config)
    seconds = time.perf_counter() - started
    predictions = predict_origins(forecaster, dataset, dataset.origins("test"))
    errors = predictions.quantiles[:, :, forecaster.spec.median_index] - predictions.targets
    return float(np.mean(errors**2)), float(np.mean(np.abs(errors))), seconds


def naive(values: np.ndarray, horizon: int, season: int) -> tuple[float, float]:
    bounds = SplitBounds(train_end=TRAIN_END, val_end=VAL_END, length=TEST_END)
    origins = bounds.origins("test", 336, horizon)
    targets = values[origins[:, None] + np.arange(horizon)[None, :]]
    errors = seasonal_naive_forecast(values, origins, horizon, season) - targets
    return float(np.mean(errors**2)), float(np.mean(np.abs(errors)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--horizons", type=int, nargs="+", default=[24, 96])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not (args.data / "ETTh1.csv").exists():
        raise SystemExit(f"ETTh1.csv not found under {args.data}; pass --data DIR")
    values = load_ot(args.data)
    print(f"{'horizon':>7}  {'model':<28} {'MSE':>8} {'MAE':>8} {'train s':>8}")
    for horizon in args.horizons:
        for seed in args.seeds:
            mse, mae, seconds = run(values, horizon, seed, args.threads)
            print(
                f"{horizon:>7}  {'tswatch GRU (seed ' + str(seed) + ')':<28} {mse:>8.4f} {mae:>8.4f} {seconds:>8.1f}"
            )
        for label, season in (("seasonal naive (24 h)", SEASON), ("random walk", 1)):
            mse, mae = naive(values, horizon, season)
            print(f"{horizon:>7}  {label:<28} {mse:>8.4f} {mae:>8.4f} {'-':>8}")
        for model, mse, mae in published(args.data, horizon):
            print(f"{horizon:>7}  {'published ' + model:<28} {mse:>8.4f} {mae:>8.4f} {'-':>8}")


if __name__ == "__main__":
    main()
