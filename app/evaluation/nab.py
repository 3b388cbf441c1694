"""NAB (Numenta Anomaly Benchmark v1.1) scoring, implemented from the restated spec in
``shared/data/nab/SCORING.md``: windowed sigmoid weights, probationary period, one global threshold
per cost profile, normalisation against the null and perfect detectors, plus point-adjusted P/R/F1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

Window = tuple[pd.Timestamp, pd.Timestamp]

NO_DETECTION_THRESHOLD = 1.1
PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750
ANOMALY_SCORE = "anomaly_score"  # the score column of NAB's results files
DETECT_SCORE = "score"  # the score column of `tswatch detect` output (empty where a reading was not scored)
# Thresholds whose corpus totals differ by less than this are treated as ties (summation order differs).
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CostProfile:
    tp: float
    fp: float
    fn: float
    tn: float


DEFAULT_PROFILES: Mapping[str, CostProfile] = {
    "standard": CostProfile(tp=1.0, fp=0.11, fn=1.0, tn=1.0),
    "reward_low_FP_rate": CostProfile(tp=1.0, fp=0.22, fn=1.0, tn=1.0),
    "reward_low_FN_rate": CostProfile(tp=1.0, fp=0.11, fn=2.0, tn=1.0),
}


@dataclass(frozen=True, eq=False)
class ResultFile:
    """One detector output file: a timestamp and an anomaly score in [0, 1] per data row."""

    timestamps: pd.DatetimeIndex
    scores: np.ndarray


@dataclass(frozen=True)
class FileScore:
    """Raw NAB score of one file at one threshold; row counts cover scorable (post-probation) rows."""

    raw_score: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows: int
    windows_detected: int


@dataclass(frozen=True)
class ProfileScore:
    profile: str
    threshold: float
    raw_score: float
    normalized_score: float
    null_score: float
    perfect_score: float
    files: dict[str, FileScore] = field(default_factory=dict)


@dataclass(frozen=True)
class PointAdjusted:
    threshold: float
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class CorpusReport:
    profiles: dict[str, ProfileScore]
    point_adjusted: PointAdjusted
    n_files: int
    n_windows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class _Prepared:
    """Profile-independent view of one file, restricted to its scorable rows.

    ``unit`` is the sigmoid weight per row: in (0, 1] inside a window (scaled by A_TP),
    in [-1, 0) outside (scaled by A_FP). ``spans`` are the windows as [lo, hi) slices (possibly empty).
    """

    scores: np.ndarray
    in_window: np.ndarray
    unit: np.ndarray
    spans: list[tuple[int, int]]

    def row_scores(self, profile: CostProfile) -> np.ndarray:
        return np.where(self.in_window, profile.tp * self.unit, profile.fp * self.unit)


# ----------------------------------------------------------------------------------------------- scoring


def probation_rows(n_rows: int) -> int:
    return min(math.floor(PROBATION_FRACTION * n_rows), PROBATION_MAX_ROWS)


def sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid: 2/(1+exp(5y)) - 1 for y <= 3, exactly -1 beyond."""
    y = np.asarray(y, dtype=float)
    out = np.full(y.shape, -1.0)
    ok = y <= 3
    out[ok] = 2.0 / (1.0 + np.exp(5.0 * y[ok])) - 1.0
    return out


def _prepare(
    timestamps: pd.DatetimeIndex,
    scores: np.ndarray,
    windows: Sequence[tuple[Any, Any]],
    probation: int | None,
) -> _Prepared:
    if len(timestamps) != len(scores):
        raise ValueError(f"{len(timestamps)} timestamps but {len(scores)} scores")
    start = probation_rows(len(timestamps)) if probation is None else probation
    bounds = _window_rows(timestamps, windows)
    in_window, unit = _unit_weights(len(timestamps), bounds)
    spans = [(max(lo - start, 0), max(hi + 1 - start, 0)) for lo, hi in bounds]
    return _Prepared(scores[start:], in_window[start:], unit[start:], spans)


def _as_index(timestamps: pd.DatetimeIndex | Sequence[Any] | np.ndarray) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(pd.to_datetime(timestamps))
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot parse timestamps: {error}") from error


def _window_rows(timestamps: pd.DatetimeIndex, windows: Sequence[tuple[Any, Any]]) -> list[tuple[int, int]]:
    """Inclusive row bounds [l, r] of each window, in row order.

    A window is the set of rows whose timestamp lies in [start, end]. Timestamps need not be sorted
    (real NAB files repeat an hour at DST changes), but each window's rows must be contiguous.
    """
    values = timestamps.values
    bounds: list[tuple[int, int]] = []
    for start, end in windows:
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        rows = np.flatnonzero((values >= start.to_datetime64()) & (values <= end.to_datetime64()))
        if rows.size == 0:
            raise ValueError(f"window {start} .. {end} contains no rows")
        if rows[-1] - rows[0] + 1 != rows.size:
            raise ValueError(f"window {start} .. {end} covers non-contiguous rows (timestamps out of order)")
        bounds.append((int(rows[0]), int(rows[-1])))
    bounds.sort()
    for (_, previous_end), (lo, _) in pairwise(bounds):
        if lo <= previous_end:
            raise ValueError(f"windows overlap at row {lo}")
    return bounds


def _unit_weights(n_rows: int, bounds: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(n_rows)
    in_window = np.zeros(n_rows, dtype=bool)
    unit = np.full(n_rows, -1.0)
    for lo, hi in bounds:
        width = hi - lo + 1
        in_window[lo : hi + 1] = True
        unit[lo : hi + 1] = sigmoid(-(hi - rows[lo : hi + 1] + 1) / width) / sigmoid(-1.0)
    if bounds:
        unit[~in_window] = _false_positive_units(rows[~in_window], bounds)
    return in_window, unit


def _false_positive_units(rows: np.ndarray, bounds: list[tuple[int, int]]) -> np.ndarray:
    """Weights of rows outside windows, relative to the most recent window that ended before them."""
    ends = np.array([hi for _, hi in bounds])
    widths = np.array([hi - lo + 1 for lo, hi in bounds])
    previous = np.searchsorted(ends, rows, side="left") - 1
    after = previous >= 0
    out = np.full(rows.shape, -1.0)
    k = previous[after]
    with np.errstate(divide="ignore"):
        # A one-row window has W' - 1 = 0: y = inf, i.e. the full false-positive cost.
        y = (rows[after] - ends[k]) / (widths[k] - 1)
    out[after] = sigmoid(y)
    return out


def _score_prepared(prepared: _Prepared, profile: CostProfile, threshold: float) -> FileScore:
    weights = prepared.row_scores(profile)
    detected = prepared.scores >= threshold
    outside_hits = detected & ~prepared.in_window
    total = float(weights[outside_hits].sum())
    hits = 0
    for lo, hi in prepared.spans:
        window_hits = detected[lo:hi]
        if window_hits.any():
            total += float(weights[lo:hi][window_hits].max())
            hits += 1
        else:
            total -= profile.fn
    tp = int((detected & prepared.in_window).sum())
    fn = int(prepared.in_window.sum()) - tp
    fp = int(outside_hits.sum())
    tn = len(detected) - tp - fn - fp
    return FileScore(total, tp, fp, fn, tn, len(prepared.spans), hits)


# ----------------------------------------------------------------------------------------------- threshold


def _sweep_deltas(prepared: _Prepared, profile: CostProfile) -> np.ndarray:
    """Per-row change of the file score when the row becomes a detection, rows switching on in
    descending score order; the sum over rows with score >= theta is S(theta) + A_FN * windows."""
    weights = prepared.row_scores(profile)
    deltas = np.where(prepared.in_window, 0.0, weights)
    for lo, hi in prepared.spans:
        if hi <= lo:
            continue
        order = np.argsort(-prepared.scores[lo:hi], kind="stable")
        best = np.maximum.accumulate(np.maximum(weights[lo:hi][order], -profile.fn))
        before = np.concatenate(([-profile.fn], best[:-1]))
        window_deltas = np.empty(hi - lo)
        window_deltas[order] = best - before
        deltas[lo:hi] = window_deltas
    return deltas


def _best_threshold(prepared: Iterable[_Prepared], profile: CostProfile) -> float:
    """Threshold maximising the corpus total; ties go to the highest threshold (fewest detections)."""
    files = list(prepared)
    if not files:
        return NO_DETECTION_THRESHOLD
    scores = np.concatenate([p.scores for p in files])
    deltas = np.concatenate([_sweep_deltas(p, profile) for p in files])
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    cumulative = np.cumsum(deltas[order])
    group_ends = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True))
    candidates = np.concatenate(([NO_DETECTION_THRESHOLD], sorted_scores[group_ends]))
    totals = np.concatenate(([0.0], cumulative[group_ends]))
    best = int(np.flatnonzero(totals >= totals.max() - _TIE_TOLERANCE)[0])
    return float(candidates[best])


# ----------------------------------------------------------------------------------------------- corpus


def evaluate_corpus(
    results: Mapping[str, ResultFile],
    windows: Mapping[str, Sequence[tuple[Any, Any]]],
    profiles: Mapping[str, CostProfile] | None = None,
    *,
    point_adjust_profile: str = "standard",
) -> CorpusReport:
    """Score a whole corpus: one optimised threshold per profile, normalised 0..100 (null..perfect).

    Point-adjusted precision/recall/F1 use the threshold of ``point_adjust_profile``.
    """
    profiles = DEFAULT_PROFILES if profiles is None else profiles
    if point_adjust_profile not in profiles:
        raise ValueError(f"profile {point_adjust_profile!r} (for point-adjusted metrics) is not defined")
    _check_corpus_keys(results, windows)
    prepared = {name: _prepare_named(name, results[name], windows[name]) for name in sorted(results)}
    n_windows = sum(len(p.spans) for p in prepared.values())
    if n_windows == 0:
        raise ValueError("the corpus has no anomaly windows: the normalised NAB score is undefined")
    scored = {name: _score_profile(name, prof, prepared, n_windows) for name, prof in profiles.items()}
    adjusted = _point_adjusted(prepared.values(), scored[point_adjust_profile].threshold)
    return CorpusReport(scored, adjusted, len(prepared), n_windows)


def _check_corpus_keys(results: Mapping[str, Any], windows: Mapping[str, Any]) -> None:
    missing_results = sorted(set(windows) - set(results))
    if missing_results:
        raise ValueError(
            f"{missing_results[0]} has labels but no results ({len(missing_results)} such files)"
        )
    missing_labels = sorted(set(results) - set(windows))
    if missing_labels:
        raise ValueError(f"{missing_labels[0]} has results but no labels ({len(missing_labels)} such files)")
    if not results:
        raise ValueError("no result files to score")


def _prepare_named(name: str, result: ResultFile, windows: Sequence[tuple[Any, Any]]) -> _Prepared:
    try:
        return _prepare(_as_index(result.timestamps), np.asarray(result.scores, dtype=float), windows, None)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error


def _score_profile(
    name: str, profile: CostProfile, prepared: Mapping[str, _Prepared], n_windows: int
) -> ProfileScore:
    threshold = _best_threshold(prepared.values(), profile)
    files = {key: _score_prepared(p, profile, threshold) for key, p in prepared.items()}
    raw = sum(f.raw_score for f in files.values())
    null, perfect = -profile.fn * n_windows, profile.tp * n_windows
    if perfect <= null:
        raise ValueError(f"profile {name!r}: tp + fn weights must be positive to normalise")
    normalized = 100.0 * (raw - null) / (perfect - null)
    return ProfileScore(name, threshold, raw, normalized, null, perfect, files)


def _point_adjusted(prepared: Iterable[_Prepared], threshold: float) -> PointAdjusted:
    """Point-adjusted P/R/F1 over scorable rows: one flagged row in a window marks the whole window."""
    tp = fp = fn = 0
    for p in prepared:
        flagged = p.scores >= threshold
        for lo, hi in p.spans:
            if flagged[lo:hi].any():
                flagged[lo:hi] = True
        tp += int((flagged & p.in_window).sum())
        fp += int((flagged & ~p.in_window).sum())
        fn += int((~flagged & p.in_window).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PointAdjusted(threshold, precision, recall, f1, tp, fp, fn)


# ----------------------------------------------------------------------------------------------- files


def load_windows(path: Path) -> dict[str, list[Window]]:
    """``combined_windows.json``: {"category/file.csv": [[start, end], ...]}."""
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object mapping file names to window lists")
    return {name: _parse_windows(path, name, spans) for name, spans in raw.items()}


def _parse_windows(path: Path, name: str, spans: Any) -> list[Window]:
    try:
        windows = [(pd.Timestamp(start), pd.Timestamp(end)) for start, end in spans]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {name}: windows must be [[start, end], ...] timestamps") from error
    for start, end in windows:
        if end < start:
            raise ValueError(f"{path}: {name}: window {start} .. {end} ends before it starts")
    return windows


def evaluate_folders(data_dir: Path, labels: Path, scores_dir: Path) -> CorpusReport:
    """Score a results folder against a NAB-layout data folder and its windows file (`tswatch evaluate`).

    The corpus is the data files; labels of files outside it (e.g. a held-out split) are ignored. A ValueError
    names the first problem with the input.
    """
    corpus = load_corpus(data_dir)
    all_windows = load_windows(labels)
    unlabelled = sorted(set(corpus) - set(all_windows))
    if unlabelled:
        raise ValueError(f"{unlabelled[0]}: data file has no entry in {labels}")
    results = align_results(load_results(scores_dir), corpus)
    return evaluate_corpus(results, {name: all_windows[name] for name in corpus})


def load_corpus(data_dir: Path) -> dict[str, pd.DatetimeIndex]:
    """Row timestamps of every ``<category>/<file>.csv`` in a NAB-layout data folder."""
    return {name: _read_timestamps(path, _read_csv(path)) for name, path in _csv_files(data_dir).items()}


def load_results(scores_dir: Path) -> dict[str, ResultFile]:
    """Detector output ``<category>/<file>.csv`` with columns timestamp, anomaly_score (others ignored)."""
    return {name: _read_result(path) for name, path in _csv_files(scores_dir).items()}


def align_results(
    results: Mapping[str, ResultFile], corpus: Mapping[str, pd.DatetimeIndex]
) -> dict[str, ResultFile]:
    """The result of each corpus file, checked row by row against the data timestamps.

    A result may be named like the data file or, as in NAB's results folders, ``<category>/<det>_<file>``.
    """
    return {name: _check_alignment(name, _find_result(results, name), corpus[name]) for name in corpus}


def _find_result(results: Mapping[str, ResultFile], name: str) -> ResultFile:
    if name in results:
        return results[name]
    category, _, file_name = name.rpartition("/")
    prefix = f"{category}/" if category else ""
    matches = [k for k in results if k.startswith(prefix) and k.endswith(f"_{file_name}")]
    if len(matches) != 1:
        raise ValueError(f"{name}: data file has no results" if not matches else f"{name}: ambiguous results")
    return results[matches[0]]


def _check_alignment(name: str, result: ResultFile, timestamps: pd.DatetimeIndex) -> ResultFile:
    if len(result.timestamps) != len(timestamps):
        raise ValueError(f"{name}: results have {len(result.timestamps)} rows, data has {len(timestamps)}")
    mismatch = np.flatnonzero(result.timestamps.values != timestamps.values)
    if mismatch.size:
        row = int(mismatch[0])
        raise ValueError(f"{name}: results timestamp {result.timestamps[row]} differs from data at row {row}")
    return result


def _csv_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory")
    files = {f"{p.parent.name}/{p.name}": p for p in sorted(folder.glob("*/*.csv"))}
    if not files:
        raise ValueError(f"{folder}: no <category>/<file>.csv files found")
    return files


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{path}: cannot read CSV ({error})") from error


def _read_result(path: Path) -> ResultFile:
    frame = _read_csv(path)
    timestamps = _read_timestamps(path, frame)
    return ResultFile(timestamps, _read_scores(path, frame))


def _require_column(path: Path, frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        raise ValueError(f"{path}: missing column {column!r} (has {', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise ValueError(f"{path}: no rows")
    return frame[column]


def _read_timestamps(path: Path, frame: pd.DataFrame) -> pd.DatetimeIndex:
    column = _require_column(path, frame, "timestamp")
    try:
        timestamps = pd.DatetimeIndex(pd.to_datetime(column))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: column 'timestamp' has unparseable values ({error})") from error
    if timestamps.hasnans:
        raise ValueError(f"{path}: column 'timestamp' has missing values")
    return timestamps


def _read_scores(path: Path, frame: pd.DataFrame) -> np.ndarray:
    """The `anomaly_score` column (NAB's results format: every row scored), else the `score` column of
    `tswatch detect` output, read as is: its empty cells (readings left unscored: the learning period, and
    duplicate, late or missing readings) count as 0, no alarm claimed."""
    column = ANOMALY_SCORE if ANOMALY_SCORE in frame.columns else DETECT_SCORE
    if column not in frame.columns:
        raise ValueError(
            f"{path}: missing column {ANOMALY_SCORE!r} (or {DETECT_SCORE!r}, as `tswatch detect` writes it; "
            f"has {', '.join(map(str, frame.columns))})"
        )
    raw = _require_column(path, frame, column)
    scores = pd.to_numeric(raw, errors="coerce").to_numpy(float, copy=True)
    unscored = raw.isna().to_numpy() if column == DETECT_SCORE else np.zeros(len(raw), dtype=bool)
    bad = np.flatnonzero(np.isnan(scores) & ~unscored)
    if bad.size:
        raise ValueError(f"{path}: column {column!r} is NaN or not a number at data row {int(bad[0]) + 1}")
    scores[unscored] = 0.0
    out_of_range = np.flatnonzero((scores < 0) | (scores > 1))
    if out_of_range.size:
        row = int(out_of_range[0])
        raise ValueError(f"{path}: column {column!r} is {scores[row]} at data row {row + 1}, outside [0, 1]")
    return scores


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror or error})") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error})") from error
