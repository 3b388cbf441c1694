"""Leave-one-category-out choice of the detector's settings on a NAB-layout corpus (issue 14, item 5).

The settings of `app.anomaly.detector` are module constants, deliberately not API parameters, so this script
runs the product's own `Detector` in process, once per candidate setting (`GRID`: every setting that was
considered while building the detector, one change at a time from the defaults). Then, for each category, it
chooses the candidate with the best standard NAB score on the *other* categories and scores the held-out
category's files with that choice; the union of the held-out results is the leave-one-category-out figure,
printed beside the all-in figure of every candidate. It is printed twice: with each fold taking its best
candidate outright, and ("within noise") with each fold keeping the defaults unless a candidate beats them on
the other categories by more than `NOISE` standard points (about one window of this corpus): a fold that
switches for less is choosing noise, which is what the first line measures. The defaults are right when every fold chooses them (a
plateau, not a peak), and then `python bench/nab.py`, which drives a real server with the defaults, gives the
same scores as the "defaults" row here (the detector is deterministic: no seeds).

    python bench/nab_loco.py [--data DIR] [--labels WINDOWS_JSON] [--perturbed-seeds 0 1 2]

`--perturbed-seeds` also runs the defaults on perturbed copies of the corpus (bench/nab_perturb.py) per seed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from nab_perturb import write_perturbed_corpus  # bench/nab_perturb.py (this folder is on sys.path)

import app.anomaly.detector as detector_module
from app.anomaly.detector import Detector, DetectorConfig
from app.evaluation.nab import ResultFile, Window, evaluate_corpus, load_windows, probation_rows

NAB_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
GRID: dict[str, dict[str, Any]] = {
    "defaults": {},
    "gate 2 of 10": {"GATE": (10, 2, 0.5)},
    "gate 4 of 10": {"GATE": (10, 4, 0.5)},
    "short mean 15": {"SHORT": 15},
    "long mean 100": {"LONG": 100},
    "cooldown 50": {"RUN": (50, 0.0, 0.5)},
    "cooldown 150": {"RUN": (150, 0.0, 0.5)},
    "season margin 0.2": {"SEASON_MARGIN": 0.2},
    "range margin 0.05": {"RANGE_MARGIN": 0.05},
}
DEFAULTS = {name: getattr(detector_module, name) for name in {k for o in GRID.values() for k in o}}
NOISE = 2.0  # standard points: about one anomaly window of this corpus (55 windows), the size of noise
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def score_file(task: tuple[dict[str, Any], Path]) -> tuple[str, ResultFile]:
    """One file through a fresh Detector with the given constants; learning = NAB's probationary rows."""
    overrides, path = task
    for name, value in {**DEFAULTS, **overrides}.items():
        setattr(detector_module, name, value)
    frame = pd.read_csv(path)
    stamps = pd.to_datetime(frame["timestamp"])
    detector = Detector(DetectorConfig(learning_points=max(20, probation_rows(len(frame)))))
    scores = [
        detector.update(t, float(v)).score or 0.0
        for t, v in zip(stamps.dt.to_pydatetime(), frame["value"], strict=True)
    ]
    return f"{path.parent.name}/{path.name}", ResultFile(pd.DatetimeIndex(stamps), np.asarray(scores))


def nab(results: dict[str, ResultFile], windows: dict[str, list[Window]]) -> dict[str, float]:
    report = evaluate_corpus(results, {name: windows.get(name, []) for name in results})
    return {name: report.profiles[name].normalized_score for name in PROFILES}


def in_categories(results: dict[str, ResultFile], categories: list[str]) -> dict[str, ResultFile]:
    return {name: result for name, result in results.items() if name.split("/")[0] in categories}


def leave_one_category_out(
    runs: dict[str, dict[str, ResultFile]], windows: dict[str, list[Window]], margin: float = 0.0
) -> tuple[dict[str, float], dict[str, str]]:
    """The held-out union's NAB scores and each fold's choice. `margin` > 0: a fold keeps the defaults unless
    another candidate beats them on the other categories by more than `margin` standard points."""
    categories = sorted({name.split("/")[0] for name in next(iter(runs.values()))})
    held_out: dict[str, ResultFile] = {}
    chosen: dict[str, str] = {}
    for category in categories:
        others = [c for c in categories if c != category]
        scores = {name: nab(in_categories(runs[name], others), windows)["standard"] for name in runs}
        best = max(scores, key=lambda name: scores[name])
        if "defaults" in scores and scores[best] - scores["defaults"] <= margin:
            best = "defaults"
        chosen[category] = best
        held_out.update(in_categories(runs[best], [category]))
    return nab(held_out, windows), chosen


def run_grid(data: Path, pool: Any, grid: dict[str, dict[str, Any]]) -> dict[str, dict[str, ResultFile]]:
    files = sorted(data.glob("*/*.csv"))
    if not files:
        raise SystemExit(f"no <category>/<file>.csv files under {data}")
    runs = {}
    for name, overrides in grid.items():
        started = time.perf_counter()
        runs[name] = dict(pool.map(score_file, [(overrides, path) for path in files]))
        print(f"  ran {name!r} in {time.perf_counter() - started:.0f}s", flush=True)
    return runs


def print_table(runs: dict[str, dict[str, ResultFile]], windows: dict[str, list[Window]]) -> None:
    print(f"\n{'setting':<20} {'standard':>9} {'low FP':>7} {'low FN':>7}")
    for name, results in runs.items():
        scores = nab(results, windows)
        print(f"{name:<20} {scores['standard']:>9.1f} {scores['reward_low_FP_rate']:>7.1f} "
              f"{scores['reward_low_FN_rate']:>7.1f}")  # fmt: skip
    for label, margin in (("leave-one-out", 0.0), ("  within noise", NOISE)):
        loco, chosen = leave_one_category_out(runs, windows, margin)
        for category, name in chosen.items():
            print(f"  held out {category}: chose {name!r} on the other categories")
        print(f"{label:<20} {loco['standard']:>9.1f} {loco['reward_low_FP_rate']:>7.1f} "
              f"{loco['reward_low_FN_rate']:>7.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=NAB_ROOT / "data")
    parser.add_argument("--labels", type=Path, default=NAB_ROOT / "labels" / "combined_windows.json")
    parser.add_argument("--perturbed-seeds", type=int, nargs="*", default=[])
    args = parser.parse_args()
    windows = load_windows(args.labels)
    with Pool(2) as pool:
        print_table(run_grid(args.data, pool, GRID), windows)
        for seed in args.perturbed_seeds:
            with tempfile.TemporaryDirectory() as folder:
                write_perturbed_corpus(args.data, args.labels, Path(folder), seed)
                runs = run_grid(Path(folder), pool, {"defaults": {}})
                print(
                    f"perturbed copies, seed {seed}: standard {nab(runs['defaults'], windows)['standard']:.1f}"
                )


if __name__ == "__main__":
    main()
