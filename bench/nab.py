"""NAB (Numenta Anomaly Benchmark) through the product: a real `tswatch serve`, one self-learning stream per file.

No detector code lives here. The script starts `tswatch serve` on 127.0.0.1 with its defaults (temporary models
dir and SQLite, TSWATCH_TORCH_THREADS=1), and for each `<category>/<file>.csv` of a NAB-layout corpus
1. creates a self-learning stream (`PUT /v1/streams/{id}` without a model) whose `learning_points` is NAB's
   probationary period for that file (`app.evaluation.nab.probation_rows`: 15 % of the rows, at most 750; the same
   rule for every file, NAB's own);
2. posts the rows in time order over HTTP, `--batch` (200) per request with `?alerts=false`;
3. writes the scores the API answered (null, i.e. learning / duplicate / late, -> 0) as the NAB result file
   `OUT/<category>/<file>.csv` (`timestamp,value,anomaly_score`, one row per data row, same order).
Two files stream at a time (`--workers`), into the one server. The results are scored with app/evaluation/nab.py:
standard / low-FP / low-FN score, windows found, seconds per file and points/s, then a table per category.

Sensitivity (issue 14, item 9): the corpus is streamed again at the other sensitivities of 0.2 / 0.5 / 0.8 (the
flag is calibrated per stream, so it cannot be derived from the score alone), and the rate of the API's
`is_anomaly` on `artificialNoAnomaly` and on the rows outside every window of the other files is printed beside
the documented false-alarm rate (`app.anomaly.sensitivity.sensitivity_to_alpha`). `--no-sensitivity-runs` skips it.

`--perturb` builds perturbed copies of the corpus (bench/nab_perturb.py: rows dropped, stamps jittered,
multi-hour gaps) under `OUT-perturbed/`, runs them the same way and prints their figure beside the clean one
(the clean results already in `OUT` are re-scored; the clean corpus is run first when they are missing).

    python bench/nab.py [--data ../shared/data/nab/data] [--labels .../combined_windows.json] [--out DIR]
                        [--perturb] [--batch 200] [--workers 2] [--no-sensitivity-runs] [--score-only]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from nab_perturb import write_perturbed_corpus  # bench/nab_perturb.py (this folder is on sys.path)
from streams import free_port, start_server, stop_server  # bench/streams.py

from app.anomaly.sensitivity import DEFAULT_SENSITIVITY, sensitivity_to_alpha
from app.evaluation.nab import (
    CorpusReport,
    Window,
    align_results,
    evaluate_corpus,
    load_corpus,
    load_results,
    load_windows,
    probation_rows,
)

NAB_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "nab"
SENSITIVITIES = (0.2, 0.5, 0.8)
NO_ANOMALY = "artificialNoAnomaly"


@dataclass(frozen=True, eq=False)
class FileRun:
    """One file as the API answered it: score per row (NaN = null), the API's flag, wall seconds."""

    name: str  # "<category>/<file>.csv"
    timestamps: pd.DatetimeIndex
    scores: np.ndarray
    flags: np.ndarray
    seconds: float

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]


@dataclass(frozen=True)
class CorpusRun:
    files: list[FileRun]
    wall: float  # seconds for the whole corpus


# -------------------------------------------------------------------- driving the API
@contextmanager
def running_server() -> Iterator[str]:
    """A real `tswatch serve` with its defaults on a temporary models dir (and SQLite); yields its base URL."""
    workdir = Path(tempfile.mkdtemp(prefix="tswatch-bench-nab-"))
    port = free_port()
    process = start_server(workdir / "models", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)
        shutil.rmtree(workdir, ignore_errors=True)


def stream_file(base: str, stream_id: str, path: Path, batch: int, sensitivity: float) -> FileRun:
    """Create a self-learning stream for one file, post its rows in order, collect the answers."""
    frame = pd.read_csv(path)
    stamps = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]))
    iso = stamps.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    values = frame["value"].astype(float).tolist()
    config = {"learning_points": probation_rows(len(frame)), "sensitivity": sensitivity, "alerts": False}
    scores: list[float] = []
    flags: list[bool] = []
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=600) as client:
        _check(client.put(f"/v1/streams/{stream_id}", json=config))
        for lo in range(0, len(values), batch):
            body = {"points": [{"timestamp": t, "value": v} for t, v in zip(iso[lo : lo + batch], values[lo : lo + batch], strict=True)]}  # fmt: skip
            points = _check(client.post(f"/v1/streams/{stream_id}/points?alerts=false", json=body))["points"]
            scores += [np.nan if p["score"] is None else float(p["score"]) for p in points]
            flags += [bool(p["is_anomaly"]) for p in points]
        client.delete(f"/v1/streams/{stream_id}")  # keeps the database small; its answer does not matter
    seconds = time.perf_counter() - started
    name = f"{path.parent.name}/{path.name}"
    if len(scores) != len(frame):
        raise SystemExit(f"{name}: the API answered {len(scores)} points for {len(frame)} rows")
    return FileRun(name, stamps, np.array(scores), np.array(flags, dtype=bool), seconds)


def _check(reply: httpx.Response) -> dict[str, object]:
    if reply.status_code not in (200, 201):
        raise SystemExit(f"{reply.request.method} {reply.request.url}: {reply.status_code} {reply.text}")
    body: dict[str, object] = reply.json()
    return body


def run_corpus(
    base: str, data_dir: Path, out_dir: Path | None, batch: int, workers: int, sensitivity: float
) -> CorpusRun:
    """Every file through the API (`workers` at a time, largest first), each written as a NAB result file
    under `out_dir` (None: not written)."""
    files = sorted(data_dir.glob("*/*.csv"), key=lambda p: p.stat().st_size, reverse=True)
    if not files:
        raise SystemExit(f"no <category>/<file>.csv files under {data_dir}")

    def one(item: tuple[int, Path]) -> FileRun:
        index, path = item
        run = stream_file(base, f"nab-{index}-{path.stem}", path, batch, sensitivity)
        if out_dir is not None:
            write_result(run, path, out_dir)
        print(
            f"  {run.name}: {len(run.scores)} rows, {run.seconds:.1f} s (sensitivity {sensitivity})",
            flush=True,
        )
        return run

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        runs = list(pool.map(one, enumerate(files)))
    return CorpusRun(sorted(runs, key=lambda run: run.name), time.perf_counter() - started)


def write_result(run: FileRun, data_file: Path, out_dir: Path) -> None:
    frame = pd.read_csv(data_file)
    target = out_dir / run.name
    target.parent.mkdir(parents=True, exist_ok=True)
    scores = np.nan_to_num(run.scores, nan=0.0)
    pd.DataFrame({"timestamp": frame["timestamp"], "value": frame["value"], "anomaly_score": scores}).to_csv(
        target, index=False
    )


# -------------------------------------------------------------------- scoring and tables
def score_corpus(data_dir: Path, windows: dict[str, list[Window]], out_dir: Path) -> CorpusReport:
    corpus = load_corpus(data_dir)
    results = align_results(load_results(out_dir), corpus)
    return evaluate_corpus(results, {name: windows.get(name, []) for name in corpus})


def print_scores(reports: dict[str, CorpusReport], runs: dict[str, CorpusRun]) -> None:
    """The NAB table, one block per corpus (clean, perturbed), then the timing of each run."""
    print(f"\n{'corpus':<10} {'profile':<20} {'score':>6} {'threshold':>9} {'windows found':>13}")
    for label, report in reports.items():
        for name, profile in report.profiles.items():
            found = sum(f.windows_detected for f in profile.files.values())
            print(
                f"{label:<10} {name:<20} {profile.normalized_score:>6.1f} {profile.threshold:>9.4f} "
                f"{found:>9}/{report.n_windows}"
            )
    for label, run in runs.items():
        rows = sum(len(file.scores) for file in run.files)
        seconds = [file.seconds for file in run.files]
        print(
            f"{label}: {len(run.files)} files, {rows} rows in {run.wall:.0f} s wall ({rows / run.wall:.0f} points/s "
            f"through the API); seconds per file: mean {np.mean(seconds):.1f}, max {max(seconds):.1f} "
            f"({rows / sum(seconds):.0f} points/s per stream)"
        )


def print_categories(label: str, report: CorpusReport) -> None:
    """Per category at the corpus's standard threshold (normalised against the category's own windows)."""
    standard = report.profiles["standard"]
    print(f"\n{label}, per category (standard profile, corpus threshold {standard.threshold:.4f})")
    print(f"{'category':<24} {'files':>5} {'windows found':>13} {'FP rows':>7} {'raw':>7} {'score':>6}")
    categories = sorted({name.split("/", 1)[0] for name in standard.files})
    for category in categories:
        files = [f for name, f in standard.files.items() if name.startswith(f"{category}/")]
        windows = sum(f.windows for f in files)
        raw = sum(f.raw_score for f in files)
        normalised = f"{100.0 * (raw + windows) / (2 * windows):>6.1f}" if windows else f"{'n/a':>6}"
        found = sum(f.windows_detected for f in files)
        fp = sum(f.fp for f in files)
        print(f"{category:<24} {len(files):>5} {found:>9}/{windows:<3} {fp:>7} {raw:>7.2f} {normalised}")


def print_sensitivity(label: str, runs: dict[float, list[FileRun]], windows: dict[str, list[Window]]) -> None:
    """Measured flag rate (the API's `is_anomaly`) on normal rows vs the documented false-alarm rate (item 9)."""
    print(
        f"\n{label}, sensitivity (item 9): rate of the API's `is_anomaly` on scored rows of {NO_ANOMALY} and on "
        "scored rows outside every window of the other files, one corpus run per sensitivity"
    )
    print(
        f"{'sensitivity':>11} {'documented':>10} | {'NoAnomaly rate':>14} {'ratio':>6} | "
        f"{'outside windows':>15} {'ratio':>6} | {'both':>8} {'ratio':>6}"
    )
    for sensitivity, files in sorted(runs.items()):
        no_anomaly = [_normal_flags(run, []) for run in files if run.category == NO_ANOMALY]
        outside = [
            _normal_flags(run, windows.get(run.name, [])) for run in files if run.category != NO_ANOMALY
        ]
        alpha = sensitivity_to_alpha(sensitivity)
        cells = []
        for group in (no_anomaly, outside, no_anomaly + outside):
            flags = np.concatenate(group) if group else np.zeros(0, dtype=bool)
            rate = float(flags.mean()) if flags.size else float("nan")
            cells.append(f"{rate:>8.5f} {rate / alpha:>6.2f}")
        print(f"{sensitivity:>11.1f} {alpha:>10.5f} | {cells[0]:>21} | {cells[1]:>22} | {cells[2]:>15}")
        counts = f"{sum(map(len, no_anomaly))} NoAnomaly rows, {sum(map(len, outside))} rows outside windows"
    print(f"scored normal rows per sensitivity: {counts}")
    if len(runs) < 2:
        return
    reference = next(iter(runs.values()))
    same = all(
        np.array_equal(a.scores, b.scores, equal_nan=True)
        for files in runs.values()
        for a, b in zip(reference, files, strict=True)
    )
    print(f"scores identical at every sensitivity (only the flags may differ): {'yes' if same else 'NO'}")


def _normal_flags(run: FileRun, windows: list[Window]) -> np.ndarray:
    """The API's flags on the scored rows (score not null) outside every window."""
    mask = np.isfinite(run.scores)
    stamps = run.timestamps.values
    for start, end in windows:
        mask &= ~((stamps >= start.to_datetime64()) & (stamps <= end.to_datetime64()))
    return run.flags[mask]


# -------------------------------------------------------------------- command line
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=NAB_ROOT / "data")
    parser.add_argument("--labels", type=Path, default=NAB_ROOT / "labels" / "combined_windows.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--perturb",
        action="store_true",
        help="run perturbed copies (bench/nab_perturb.py) beside the clean corpus",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbed copies")
    parser.add_argument("--batch", type=int, default=200, help="points per request")
    parser.add_argument("--workers", type=int, default=2, help="files streamed at the same time")
    parser.add_argument(
        "--sensitivity", type=float, default=DEFAULT_SENSITIVITY, help="the streams' sensitivity"
    )
    parser.add_argument(
        "--no-sensitivity-runs",
        action="store_true",
        help="skip the extra corpus runs at the other sensitivities of the table (0.2 / 0.5 / 0.8)",
    )
    parser.add_argument("--score-only", action="store_true", help="score existing results in --out")
    args = parser.parse_args()
    windows = load_windows(args.labels)
    corpora = plan(args)
    runs: dict[str, dict[float, list[FileRun]]] = {}
    timing: dict[str, CorpusRun] = {}
    if not args.score_only:
        with running_server() as base:
            for label, (data_dir, out_dir, run_it) in corpora.items():
                if not run_it:
                    print(f"{label}: scoring the existing results in {out_dir}")
                    continue
                print(f"{label}: {data_dir} -> {out_dir}", flush=True)
                timing[label] = run_corpus(
                    base, data_dir, out_dir, args.batch, args.workers, args.sensitivity
                )
                runs[label] = {args.sensitivity: timing[label].files}
                if label == "clean" and not args.no_sensitivity_runs:
                    for other in (s for s in SENSITIVITIES if s != args.sensitivity):
                        extra = run_corpus(base, data_dir, None, args.batch, args.workers, other)
                        runs[label][other] = extra.files
    reports = {
        label: score_corpus(data_dir, windows, out_dir) for label, (data_dir, out_dir, _) in corpora.items()
    }
    print_scores(reports, timing)
    for label, report in reports.items():
        print_categories(label, report)
    for label, by_sensitivity in runs.items():
        print_sensitivity(label, by_sensitivity, windows)


def plan(args: argparse.Namespace) -> dict[str, tuple[Path, Path, bool]]:
    """label -> (data folder, results folder, run it now). With `--perturb` the clean corpus is only scored
    when `--out` already holds results for every data file (from a run without `--perturb`), else run too."""
    clean_exists = all((args.out / name).exists() for name in load_corpus(args.data))
    corpora = {"clean": (args.data, args.out, not (args.perturb and clean_exists))}
    if args.perturb:
        root = args.out.with_name(args.out.name + "-perturbed")
        if not args.score_only:
            write_perturbed_corpus(args.data, args.labels, root / "data", args.seed)
        corpora["perturbed"] = (root / "data", root / "results", True)
    return corpora


if __name__ == "__main__":
    main()
