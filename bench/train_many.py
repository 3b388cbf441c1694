"""Per-series training at scale: `--series` synthetic hourly series, one model each (`--per-series`), fitted
sequentially in this process and then on a Ray cluster of `--nodes` nodes started on this machine (loopback
only; tests/ray_cluster.py), each registered into its own temporary registry. Prints models/s for both.

Each series is a daily cycle with its own level, amplitude, phase and noise. The models use a small fixed
configuration (window 48 in patches of 12, hidden 32, `--epochs` epochs) so the figure measures the
orchestration (task dispatch, transfer of weights and manifests, registration) as well as the fitting.
Needs the ray extra (pip install -e '.[ray]').

    python bench/train_many.py [--series 1000] [--points 400] [--epochs 3] [--nodes 2] [--skip-local]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/ is not an installed package

from app.registry.factory import open_registry  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.training.data.prepared import PreparedData, prepare  # noqa: E402
from app.training.fit_tasks import LocalRunner, SilentTaskProgress, TaskRunner  # noqa: E402
from app.training.per_series import train_per_series  # noqa: E402
from tests.ray_cluster import loopback_driver, ray_cluster  # noqa: E402

CONFIG = {"horizon": 12, "window": 48, "patch_len": 12, "hidden": 32, "layers": 1, "patience": 3}


@dataclass(frozen=True)
class Run:
    label: str
    models: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.models / self.seconds


def synthetic_fleet(series: int, points: int, seed: int = 0) -> PreparedData:
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-01-01", periods=points, freq="h")
    hours = np.arange(points)
    frames = []
    for index in range(series):
        level, amplitude, phase = rng.uniform(5, 50), rng.uniform(1, 10), rng.uniform(0, 2 * np.pi)
        values = (
            level + amplitude * np.sin(2 * np.pi * hours / 24 + phase) + rng.normal(0, amplitude / 10, points)
        )
        frames.append(pd.DataFrame({"timestamp": stamps, "value": values, "host": f"s{index:05d}"}))
    return prepare(pd.concat(frames, ignore_index=True), id_col="host", min_length=60)


def timed(label: str, data: PreparedData, runner: TaskRunner, epochs: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="train-many-") as folder:
        registry = open_registry(Settings(models_dir=Path(folder)))
        try:
            started = time.perf_counter()
            results = train_per_series(
                data, "many", registry, runner, SilentTaskProgress(), overrides={**CONFIG, "epochs": epochs}
            )
            seconds = time.perf_counter() - started
            assert len(registry.list_models()) == len(data.series)
        finally:
            registry.database.dispose()
    return Run(label, len(results), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--points", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TSWATCH_TORCH_THREADS", "1")
    data = synthetic_fleet(args.series, args.points)
    runs = []
    if not args.skip_local:
        runs.append(timed("local, sequential", data, LocalRunner(), args.epochs))
        print(f"{runs[-1].label}: {runs[-1].rate:.2f} models/s", flush=True)
    from app.training.ray_runner import RayRunner

    with ray_cluster(args.nodes, 1) as cluster, loopback_driver(), RayRunner(cluster.address) as runner:
        runs.append(timed(f"Ray, {args.nodes} nodes x 1 CPU", data, runner, args.epochs))
    print(f"\n{args.series} series x {args.points} points, {args.epochs} epochs, {os.cpu_count()} cores")
    print(f"{'runner':<24} {'models':>7} {'seconds':>9} {'models/s':>9}")
    for run in runs:
        print(f"{run.label:<24} {run.models:>7} {run.seconds:>9.1f} {run.rate:>9.2f}")


if __name__ == "__main__":
    main()
