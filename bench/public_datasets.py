"""Public datasets that pip packages ship, trained as a new user would: `tswatch train DATA --name NAME --json`
with the product's defaults only, next to seasonal naive and random walk on the same test split.

Issue 16's target: with defaults only, the test MAE is at most seasonal naive's and random walk's on every
dataset (a version that loses is flagged, see app/registry/quality.py), and at least 10% better than both on
the seasonal ones. The datasets (install them with `pip install -e '.[bench]'`):

    taylor       pmdarima     half-hourly electricity demand, England & Wales, 12 weeks of 2000
    msft         pmdarima     Microsoft daily close (trading days; holidays are gaps the product fills)
    co2          statsmodels  weekly Mauna Loa CO2 (missing weeks left out: gaps the product fills)
    elnino       statsmodels  monthly sea-surface temperature, 1950-2010
    airpassengers pmdarima    monthly airline passengers, 1949-1960
    wineind      pmdarima     monthly Australian wine sales, 1980-1994
    macrodata    statsmodels  quarterly US macro panel, 8 series in long format (`--id-col series`)
    sunspots     statsmodels  yearly sunspot activity, 1700-2008
    nile         statsmodels  yearly Nile flow at Aswan, 1871-1970

Each dataset is written to CSV in a temporary folder and trained by `python -m app.cli.main train` in a
subprocess whose registry (TSWATCH_MODELS_DIR, its SQLite database) lives in that folder; the version's
horizon and training time are then read from the registry. The MAEs are the ones `tswatch train` prints
(pooled over the series of a panel).

    TSWATCH_TORCH_THREADS=1 python bench/public_datasets.py [--only taylor nile] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from app.registry.factory import open_registry
from app.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SERIES_COL = "series"
MACRO_SERIES = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop")


@dataclass(frozen=True)
class Dataset:
    name: str
    package: str
    frequency: str  # as described, for the table
    load: Callable[[], pd.DataFrame]  # columns timestamp, value (and `series` for a panel)


@dataclass(frozen=True)
class Result:
    dataset: str
    frequency: str
    series: int
    points: int
    horizon: int
    window: int
    model_mae: float
    seasonal_naive_mae: float
    random_walk_mae: float
    ratio: float  # model MAE / the better baseline's
    flagged: bool
    loses_to: list[str]
    season: int
    train_seconds: float
    wall_seconds: float


def _frame(stamps: Any, values: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {"timestamp": pd.DatetimeIndex(stamps), "value": pd.Series(values, dtype=float).values}
    )


def _dates(years: pd.Series, months: pd.Series | int = 1) -> pd.Series:
    """First days of the given months."""
    parts = pd.DataFrame({"year": years.astype(int), "month": months, "day": 1})
    return pd.to_datetime(parts)


def taylor() -> pd.DataFrame:
    from pmdarima.datasets import load_taylor

    values = load_taylor()  # 4032 half-hours from Monday 5 June 2000 (Taylor 2003)
    return _frame(pd.date_range("2000-06-05", periods=len(values), freq="30min"), values)


def msft() -> pd.DataFrame:
    from pmdarima.datasets import load_msft

    data = load_msft()
    return _frame(pd.to_datetime(data["Date"]), data["Close"])


def co2() -> pd.DataFrame:
    from statsmodels.datasets import co2 as source

    data = source.load_pandas().data["co2"].dropna()
    return _frame(data.index, data.to_numpy())


def elnino() -> pd.DataFrame:
    from statsmodels.datasets import elnino as source

    data = source.load_pandas().data  # one row per year, one column per month
    months = list(data.columns[1:])
    long = data.melt(id_vars="YEAR", value_vars=months, var_name="month", value_name="value")
    stamps = _dates(long["YEAR"], long["month"].map(months.index) + 1)
    return _frame(stamps, long["value"]).sort_values("timestamp", ignore_index=True)


def airpassengers() -> pd.DataFrame:
    from pmdarima.datasets import load_airpassengers

    values = load_airpassengers()
    return _frame(pd.date_range("1949-01-01", periods=len(values), freq="MS"), values)


def wineind() -> pd.DataFrame:
    from pmdarima.datasets import load_wineind

    values = load_wineind()
    return _frame(pd.date_range("1980-01-01", periods=len(values), freq="MS"), values)


def macrodata() -> pd.DataFrame:
    from statsmodels.datasets import macrodata as source

    data = source.load_pandas().data
    stamps = _dates(data["year"], 3 * (data["quarter"] - 1) + 1)  # quarter starts
    frames = [_frame(stamps, data[column]).assign(**{SERIES_COL: column}) for column in MACRO_SERIES]
    return pd.concat(frames, ignore_index=True)


def sunspots() -> pd.DataFrame:
    from statsmodels.datasets import sunspots as source

    data = source.load_pandas().data
    return _frame(_dates(data["YEAR"]), data["SUNACTIVITY"])


def nile() -> pd.DataFrame:
    from statsmodels.datasets import nile as source

    data = source.load_pandas().data
    return _frame(_dates(data["year"]), data["volume"])


DATASETS = (
    Dataset("taylor", "pmdarima", "half-hourly", taylor),
    Dataset("msft", "pmdarima", "daily (trading)", msft),
    Dataset("co2", "statsmodels", "weekly", co2),
    Dataset("elnino", "statsmodels", "monthly", elnino),
    Dataset("airpassengers", "pmdarima", "monthly", airpassengers),
    Dataset("wineind", "pmdarima", "monthly", wineind),
    Dataset("macrodata", "statsmodels", "quarterly", macrodata),
    Dataset("sunspots", "statsmodels", "yearly", sunspots),
    Dataset("nile", "statsmodels", "yearly", nile),
)


def product_env(models_dir: Path, threads: int | None) -> dict[str, str]:
    """The caller's environment without its TSWATCH_ settings: a registry of its own, defaults otherwise."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    env["TSWATCH_MODELS_DIR"] = str(models_dir)
    if threads is not None:
        env["TSWATCH_TORCH_THREADS"] = str(threads)
    return env


def run(dataset: Dataset, workdir: Path, threads: int | None) -> Result:
    frame = dataset.load()
    csv = workdir / f"{dataset.name}.csv"
    frame.to_csv(csv, index=False)
    models_dir = workdir / "models"
    command = [sys.executable, "-m", "app.cli.main", "train", str(csv), "--name", dataset.name, "--json"]
    if SERIES_COL in frame.columns:
        command += ["--id-col", SERIES_COL]
    started = time.perf_counter()
    done = subprocess.run(
        command, env=product_env(models_dir, threads), capture_output=True, text=True, cwd=REPO
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"tswatch train {dataset.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout)
    return summarise(dataset, frame, answer, models_dir, wall)


def summarise(
    dataset: Dataset, frame: pd.DataFrame, answer: dict[str, Any], models_dir: Path, wall: float
) -> Result:
    registry = open_registry(Settings(models_dir=models_dir))
    try:
        manifest = registry.read_manifest(registry.get_version(answer["name"], answer["version"]))
    finally:
        registry.database.dispose()
    metrics = manifest.metrics
    model = metrics.model.mae
    seasonal, walk = metrics.baselines.seasonal_naive.mae, metrics.baselines.random_walk.mae
    better = min(seasonal, walk)
    return Result(
        dataset=dataset.name,
        frequency=f"{dataset.frequency} ({manifest.data.frequency})",
        series=len(manifest.data.series),
        points=len(frame),
        horizon=manifest.spec.horizon,
        window=manifest.spec.window,
        model_mae=model,
        seasonal_naive_mae=seasonal,
        random_walk_mae=walk,
        ratio=model / better if better > 0 else float("inf"),
        flagged=bool(metrics.loses_to),
        loses_to=list(metrics.loses_to or []),
        season=metrics.season,
        train_seconds=manifest.training.seconds,
        wall_seconds=wall,
    )


COLUMNS = (  # title, width and alignment, format
    ("dataset", "<13", "{}"),
    ("frequency", "<22", "{}"),
    ("series", ">6", "{}"),
    ("points", ">6", "{}"),
    ("horizon", ">7", "{}"),
    ("model MAE", ">10", "{:.4g}"),
    ("s-naive MAE", ">11", "{:.4g}"),
    ("RW MAE", ">10", "{:.4g}"),
    ("ratio", ">6", "{:.3f}"),
    ("flagged", ">7", "{}"),
    ("train s", ">7", "{:.1f}"),
    ("wall s", ">7", "{:.1f}"),
)


def table(results: list[Result]) -> str:
    rows = [[title for title, _, _ in COLUMNS]]
    for r in results:
        cells = (r.dataset, r.frequency, r.series, r.points, r.horizon, r.model_mae, r.seasonal_naive_mae,
                 r.random_walk_mae, r.ratio, "yes" if r.flagged else "no", r.train_seconds, r.wall_seconds)  # fmt: skip
        rows.append([fmt.format(cell) for (_, _, fmt), cell in zip(COLUMNS, cells, strict=True)])
    return "\n".join(
        "  ".join(f"{cell:{spec}}" for (_, spec, _), cell in zip(COLUMNS, row, strict=True)) for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", nargs="+", choices=[d.name for d in DATASETS], help="run only these datasets"
    )
    parser.add_argument(
        "--threads", type=int, help="TSWATCH_TORCH_THREADS for training (default: the product's)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    chosen = [d for d in DATASETS if args.only is None or d.name in args.only]
    results, failed = [], {}
    with tempfile.TemporaryDirectory(prefix="tswatch-public-") as tmp:
        for dataset in chosen:
            print(f"training {dataset.name} ({dataset.package}) ...", file=sys.stderr, flush=True)
            try:
                results.append(run(dataset, Path(tmp), args.threads))
            except RuntimeError as error:  # one dataset's failure is reported, the others still run
                print(error, file=sys.stderr)
                failed[dataset.name] = str(error).splitlines()[-1]
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], "failed": failed}, indent=2))
        raise SystemExit(1 if failed else 0)
    print(table(results))
    for name, reason in failed.items():
        print(f"{name}: FAILED ({reason})")
    flagged = [r.dataset for r in results if r.flagged]
    print(f"\nflagged (test MAE worse than a naive baseline): {', '.join(flagged) or 'none'}")
    print(
        "ratio: model MAE / the better baseline's MAE (below 1: better than both; target <= 0.9 when seasonal)"
    )
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
