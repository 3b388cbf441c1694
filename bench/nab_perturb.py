"""Perturbed copies of a NAB-layout corpus: the irregular sampling real metric feeds have (issue 14, item 6).

Per file, with a seed fixed by the file's name (the same corpus on every run):
1. cut `GAPS` (2 or 3) gaps of `GAP_HOURS` (3-12) hours each: the rows inside are dropped. Gaps are placed
   anywhere outside the anomaly windows, so every labelled anomaly stays observable;
2. drop `DROP` (15 %) of the remaining rows at random; the labelled anomaly rows (`combined_labels.json` beside
   the windows file) and the first row of each window are kept. Why: the copies test how the detector handles
   irregular sampling, and a dropped labelled row takes the anomaly itself out of the data (a spike that was
   never sent cannot be detected by anyone): with those rows dropped too, 7-12 of the dev split's 57 labelled
   rows vanished per seed, and that loss of data, not the timing, cost most of the perturbed score;
3. jitter every timestamp by up to +/- `JITTER` (30 %) of the file's median interval, uniformly, then keep the
   row order (stamps are made non-decreasing: rows never swap).
Values are unchanged, and the labels stay on their timestamps: windows are time ranges, so the same windows file
scores the perturbed corpus (`app.evaluation.nab` maps each window onto the rows that now fall inside it, and the
probationary period is recomputed from the new row count).

    python bench/nab_perturb.py --data DIR --labels WINDOWS_JSON --to PERTURBED_DIR [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from app.evaluation.nab import Window, load_windows

NAB_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
DROP = 0.15
JITTER = 0.30
GAPS = (2, 3)  # inclusive range of the number of gaps per file
GAP_HOURS = (3.0, 12.0)
STAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def file_seed(name: str, seed: int) -> int:
    """A seed per file (and run seed) that does not depend on Python's hash randomisation."""
    return zlib.crc32(f"{seed}:{name}".encode())


def perturb(
    frame: pd.DataFrame, windows: list[Window], seed: int, labelled: Sequence[str] = ()
) -> pd.DataFrame:
    """`frame` (timestamp, value) with gaps cut, rows dropped and stamps jittered (module docstring);
    `labelled`: the file's labelled anomaly timestamps, never dropped at random."""
    rng = np.random.default_rng(seed)
    stamps = pd.to_datetime(frame["timestamp"]).to_numpy(dtype="datetime64[s]").astype(np.int64)
    in_window = _in_windows(stamps, windows)
    keep = ~_gap_rows(stamps, in_window, rng)
    keep &= (
        _random_keep(len(stamps), rng)
        | _first_rows_of_windows(stamps, windows, keep)
        | np.isin(stamps, [_seconds(pd.Timestamp(stamp)) for stamp in labelled])
    )
    kept = stamps[keep]
    step = float(np.median(np.diff(stamps))) if len(stamps) > 1 else 1.0
    jittered = kept + rng.uniform(-JITTER, JITTER, len(kept)) * step
    ordered = np.maximum.accumulate(np.round(jittered)).astype(np.int64)
    out = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(ordered, unit="s").strftime(STAMP_FORMAT),
            "value": frame["value"].to_numpy()[keep],
        }
    )
    return out


def _in_windows(stamps: np.ndarray, windows: list[Window]) -> np.ndarray:
    inside = np.zeros(len(stamps), dtype=bool)
    for start, end in windows:
        inside |= (stamps >= _seconds(start)) & (stamps <= _seconds(end))
    return inside


def _gap_rows(stamps: np.ndarray, in_window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows inside 2-3 multi-hour gaps that touch no window (fewer if the file has no room for them)."""
    cut = np.zeros(len(stamps), dtype=bool)
    wanted = int(rng.integers(GAPS[0], GAPS[1] + 1))
    for _ in range(50 * wanted):  # rejection sampling: a gap must not touch a window or another gap
        if wanted == 0:
            break
        length = rng.uniform(*GAP_HOURS) * 3600.0
        start = rng.uniform(float(stamps[0]), float(stamps[-1]) - length)
        rows = (stamps >= start) & (stamps < start + length)
        if rows.any() and not (rows & (in_window | cut)).any():
            cut |= rows
            wanted -= 1
    return cut


def _random_keep(rows: int, rng: np.random.Generator) -> np.ndarray:
    keep = np.ones(rows, dtype=bool)
    keep[rng.choice(rows, size=round(DROP * rows), replace=False)] = False
    return keep


def _first_rows_of_windows(stamps: np.ndarray, windows: list[Window], kept: np.ndarray) -> np.ndarray:
    """The first kept row of each window: a window never loses all its rows to the random drop."""
    first = np.zeros(len(stamps), dtype=bool)
    for start, end in windows:
        rows = np.flatnonzero((stamps >= _seconds(start)) & (stamps <= _seconds(end)) & kept)
        if rows.size:
            first[rows[0]] = True
    return first


def _seconds(stamp: pd.Timestamp) -> int:
    return int(stamp.to_datetime64().astype("datetime64[s]").astype(np.int64))


def write_perturbed_corpus(data_dir: Path, labels: Path, target: Path, seed: int = 0) -> list[Path]:
    """Perturbed copies of every `<category>/<file>.csv` under `data_dir`, written to the same layout."""
    windows = load_windows(labels)
    points = labels.parent / "combined_labels.json"
    labelled: dict[str, list[str]] = json.loads(points.read_text()) if points.exists() else {}
    written = []
    for path in sorted(data_dir.glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        frame = perturb(
            pd.read_csv(path), windows.get(name, []), file_seed(name, seed), labelled.get(name, [])
        )
        out = target / path.parent.name / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
        written.append(out)
    if not written:
        raise SystemExit(f"no <category>/<file>.csv files under {data_dir}")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=NAB_ROOT / "data")
    parser.add_argument("--labels", type=Path, default=NAB_ROOT / "labels" / "combined_windows.json")
    parser.add_argument("--to", type=Path, required=True, help="folder for the perturbed corpus")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    written = write_perturbed_corpus(args.data, args.labels, args.to, args.seed)
    print(f"{len(written)} perturbed files under {args.to}")


if __name__ == "__main__":
    main()
