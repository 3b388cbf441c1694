"""ETT univariate (OT) benchmark of the product's defaults, next to both naive baselines and published rows.

Each run trains exactly as a user would: `train_file` with no architecture option (`choose_config` picks
window, patches, hidden size, normalisation, baseline, epochs from the data). The only options passed are the
task's: the horizon, and the standard protocol's split (../shared/data/README.md: 12/4/4 months, i.e. the
first 20 months cut into 60/20/20%, so `val_fraction=test_fraction=0.2` reproduces it exactly). The registered
version is then loaded from the registry and evaluated through the REST API's forecast code path
(`answer_forecasts`: raw JSON bodies in, JSON answers out) on every test origin. MSE/MAE on values z-scored
with the training rows' statistics, averaged over every test origin and step, as published.

    TSWATCH_TORCH_THREADS=1 python bench/ett.py [--data ../shared/data/ett] [--datasets ETTh1 ETTh2 ETTm1]
        [--horizons 24 96]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from app.api.forecast_answers import answer_forecasts
from app.forecasting.forecaster import Forecaster
from app.forecasting.metrics import seasonal_naive_forecast
from app.forecasting.windows import SplitBounds
from app.registry.factory import open_registry
from app.settings import Settings
from app.training.pipeline import train_file

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ett"
HOURLY_END = 14_400  # 20 months of 30 days; ×4 for 15-minute data
PROTOCOL = {"val_fraction": 0.2, "test_fraction": 0.2}
BODY_SERIES = 500
DAY_STEPS = 24
LEVELS = (80.0, 95.0)


@dataclass(frozen=True)
class Row:
    label: str
    mse: float
    mae: float
    seconds: float | None = None
    coverage: tuple[float, float] | None = None
    fit_seconds: float | None = None  # the training loop alone; `seconds` is the whole `train_file` call


def protocol_file(data_dir: Path, dataset: str, directory: Path) -> tuple[Path, np.ndarray, int]:
    """The first 20 months (date, OT) as a CSV, the raw values and the number of training rows."""
    frame = pd.read_csv(data_dir / f"{dataset}.csv", usecols=["date", "OT"])
    rows = HOURLY_END * (4 if dataset.startswith("ETTm") else 1)
    frame = frame.iloc[:rows]
    path = directory / f"{dataset}.csv"
    frame.to_csv(path, index=False)
    bounds = SplitBounds.from_fractions(rows, PROTOCOL["val_fraction"], PROTOCOL["test_fraction"])
    return path, frame["OT"].to_numpy(dtype=np.float64), bounds.train_end


def api_forecasts(
    forecaster: Forecaster, values: np.ndarray, stamps: np.ndarray, origins: np.ndarray
) -> tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]]]:
    """Median [K, H] and interval bounds per level through the API's forecast answer path."""
    window = forecaster.spec.window
    means: list[list[float]] = []
    lowers: dict[float, list[list[float]]] = {lv: [] for lv in LEVELS}
    uppers: dict[float, list[list[float]]] = {lv: [] for lv in LEVELS}
    for start in range(0, len(origins), BODY_SERIES):
        chunk = origins[start : start + BODY_SERIES]
        body = {
            "series": [
                {
                    "id": str(origin),
                    "values": values[origin - window : origin].tolist(),
                    "timestamps": [str(s) for s in stamps[origin - window : origin]],
                }
                for origin in chunk
            ],
            "levels": list(LEVELS),
        }
        (reply,) = answer_forecasts(forecaster, {"name": "bench"}, [json.dumps(body).encode()])
        if reply.body is None:
            raise SystemExit(f"the API refused the request: {reply}")
        for item in json.loads(reply.body)["forecasts"]:
            means.append(item["mean"])
            for interval in item["intervals"]:
                lowers[interval["level"]].append(interval["lower"])
                uppers[interval["level"]].append(interval["upper"])
    bands = {lv: (np.array(lowers[lv]), np.array(uppers[lv])) for lv in LEVELS}
    return np.array(means), bands


def evaluate(dataset: str, horizon: int, data_dir: Path, workdir: Path) -> tuple[list[Row], list[str]]:
    path, values, train_end = protocol_file(data_dir, dataset, workdir)
    spread = float(np.std(values[:train_end]))
    registry = open_registry(
        Settings(models_dir=workdir / "models", database_url=f"sqlite:///{workdir}/r.db")
    )
    name = f"{dataset.lower()}-{horizon}"
    started = time.perf_counter()
    result = train_file(path, name, registry, None, time_col="date", value_col="OT",
                        overrides={"horizon": horizon, **PROTOCOL})  # fmt: skip
    wall = time.perf_counter() - started
    loaded = registry.load(result.version)
    registry.database.dispose()
    bounds = SplitBounds.from_fractions(len(values), PROTOCOL["val_fraction"], PROTOCOL["test_fraction"])
    origins = bounds.origins("test", loaded.forecaster.spec.window, horizon)
    targets = values[origins[:, None] + np.arange(horizon)[None, :]]  # [K, H]
    stamps = pd.read_csv(path, usecols=["date"])["date"].to_numpy()
    median, bands = api_forecasts(loaded.forecaster, values, stamps, origins)
    errors = (median - targets) / spread
    coverage = tuple(float(np.mean((targets >= lo) & (targets <= hi))) for lo, hi in bands.values())
    rows = [Row("tswatch defaults", float(np.mean(errors**2)), float(np.mean(np.abs(errors))),
                wall, (coverage[0], coverage[1]), result.manifest.training.seconds)]  # fmt: skip
    season = DAY_STEPS * (4 if dataset.startswith("ETTm") else 1)  # the daily cycle, detected or not
    for label, lag in ((f"seasonal naive ({season})", season), ("random walk", 1)):
        naive = (seasonal_naive_forecast(values, origins, horizon, lag) - targets) / spread
        rows.append(Row(label, float(np.mean(naive**2)), float(np.mean(np.abs(naive)))))
    choices = [f"{c.field}={c.value} ({c.source}: {c.reason})" for c in result.manifest.training.choices]
    return rows, choices


def published(data_dir: Path, dataset: str, horizon: int) -> list[Row]:
    with open(data_dir / "published_univariate.csv") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    return [
        Row(f"published {row['model']}", float(row["mse"]), float(row["mae"]))
        for row in csv.DictReader(lines)
        if row["dataset"] == dataset and int(row["horizon"]) == horizon
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=["ETTh1", "ETTh2", "ETTm1"])
    parser.add_argument("--horizons", type=int, nargs="+", default=[24, 96])
    parser.add_argument("--choices", action="store_true", help="print every configuration choice")
    args = parser.parse_args()
    torch.set_num_threads(Settings().torch_threads)
    print(f"torch threads {torch.get_num_threads()}; load average before: {os.getloadavg()[0]:.2f}")
    header = f"{'data':<6} {'H':>3}  {'forecaster':<26} {'MSE':>7} {'MAE':>7} {'fit/all s':>9} {'cov80':>6} {'cov95':>6}"
    print(header)
    for dataset in args.datasets:
        for horizon in args.horizons:
            with tempfile.TemporaryDirectory() as tmp:
                rows, choices = evaluate(dataset, horizon, args.data, Path(tmp))
            load = os.getloadavg()[0]
            for row in rows + published(args.data, dataset, horizon):
                seconds = "-" if row.seconds is None else f"{row.fit_seconds or 0:.0f}/{row.seconds:.0f}"
                cov = ("-", "-") if row.coverage is None else tuple(f"{c:.1%}" for c in row.coverage)
                print(f"{dataset:<6} {horizon:>3}  {row.label:<26} {row.mse:>7.4f} {row.mae:>7.4f} "
                      f"{seconds:>9} {cov[0]:>6} {cov[1]:>6}")  # fmt: skip
            print(f"{'':<11}(load average after this run: {load:.2f})")
            if args.choices:
                for choice in choices:
                    print(f"{'':<11}{choice}")


if __name__ == "__main__":
    main()
