"""NAB scoring: hand-computed toy cases, the CLI, and the perfect/null detectors on the real dev split.

Every expected value below is written out from SCORING.md:
    sigma(y) = 2 / (1 + exp(5y)) - 1 (y <= 3), -1 (y > 3)
    window row i of [l, r], W = r - l + 1:   y = -(r - i + 1) / W,   s = A_TP * sigma(y) / sigma(-1)
    row after a window ending at r', width W':  y = (i - r') / (W' - 1),  s = A_FP * sigma(y)
    row before any window: s = -A_FP;  undetected window: -A_FN
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from app.cli.evaluate import register
from app.evaluation.nab import (
    DEFAULT_PROFILES,
    CostProfile,
    FileScore,
    ResultFile,
    align_results,
    evaluate_corpus,
    load_corpus,
    load_results,
    load_windows,
    probation_rows,
)

NAB_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"

N_ROWS = 40  # probation = floor(0.15 * 40) = 6 rows (0..5)
WINDOW_START, WINDOW_END = 20, 24  # W = 5
TIMESTAMPS = pd.date_range("2024-01-01", periods=N_ROWS, freq="h")


def sig(y: float) -> float:
    return -1.0 if y > 3 else 2 / (1 + math.exp(5 * y)) - 1


def window(start_row: int, end_row: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    return TIMESTAMPS[start_row], TIMESTAMPS[end_row]


# An extra file with 42 one-row windows, each detected (score 1.0: +A_TP instead of -A_FN), between runs of 19
# rows scoring 0.0 (each a full -A_FP if detected). Next to it, detecting exactly the rows scoring 1.0 is by far
# the best corpus threshold, so `evaluate_corpus` reports each other file's NAB score with those rows detected.
ANCHOR = "anchor/anchor.csv"
ANCHOR_TIMESTAMPS = pd.date_range("2020-01-01", periods=1000, freq="h")  # probation: 150 rows
ANCHOR_STARTS = np.arange(160, 1000, 20)
ANCHOR_SCORES = np.isin(np.arange(1000), ANCHOR_STARTS).astype(float)
ANCHOR_WINDOWS = [(ANCHOR_TIMESTAMPS[s], ANCHOR_TIMESTAMPS[s]) for s in ANCHOR_STARTS]


def scores_with_detections(
    results: dict[str, ResultFile], windows: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]], profile: str
) -> dict[str, FileScore]:
    """Per-file NAB scores (profile `profile`) when exactly the rows scoring 1.0 are detections."""
    report = evaluate_corpus(
        {**results, ANCHOR: ResultFile(ANCHOR_TIMESTAMPS, ANCHOR_SCORES)},
        {**windows, ANCHOR: ANCHOR_WINDOWS},
        {profile: DEFAULT_PROFILES[profile]},
        point_adjust_profile=profile,
    )
    chosen = report.profiles[profile]
    assert chosen.threshold == 1.0
    return {name: score for name, score in chosen.files.items() if name != ANCHOR}


def file_score(
    *detected_rows: int, windows: list[tuple[pd.Timestamp, pd.Timestamp]], profile: str = "standard"
) -> FileScore:
    scores = np.zeros(N_ROWS)
    scores[list(detected_rows)] = 1.0
    return scores_with_detections(
        {"cat/a.csv": ResultFile(TIMESTAMPS, scores)}, {"cat/a.csv": windows}, profile
    )["cat/a.csv"]


def one_window_score(*detected_rows: int, profile: str = "standard") -> float:
    return file_score(*detected_rows, windows=[window(WINDOW_START, WINDOW_END)], profile=profile).raw_score


# ---------------------------------------------------------------------------------------- one file


def test_sigmoid_reference_values() -> None:
    assert sig(-1) == pytest.approx(0.98661, abs=1e-5)
    assert sig(0) == 0.0


def test_probation_period() -> None:
    assert probation_rows(N_ROWS) == 6
    assert probation_rows(10320) == 750  # min(floor(1548.0), 750)
    assert probation_rows(4032) == 604  # floor(604.8)


def test_detection_at_first_window_row_scores_a_tp() -> None:
    # y = -(24 - 20 + 1) / 5 = -1  ->  sigma(-1) / sigma(-1) = 1
    assert one_window_score(20) == pytest.approx(1.0)


def test_detection_at_last_window_row() -> None:
    # y = -(24 - 24 + 1) / 5 = -0.2  ->  sigma(-0.2) / sigma(-1) = 0.462117 / 0.986614 = 0.468387
    expected = sig(-0.2) / sig(-1)
    assert expected == pytest.approx(0.468387, abs=1e-6)
    assert one_window_score(24) == pytest.approx(expected)


def test_only_first_detection_in_window_counts() -> None:
    # rows 21, 22, 23: only row 21 counts, y = -(24 - 21 + 1) / 5 = -0.8  ->  0.964028 / 0.986614 = 0.977107
    expected = sig(-0.8) / sig(-1)
    assert expected == pytest.approx(0.977107, abs=1e-6)
    assert one_window_score(21, 22, 23) == pytest.approx(expected)


def test_false_positive_before_window_costs_full_fp_weight() -> None:
    # row 10 precedes every window: -A_FP = -0.11; the window is missed: -A_FN = -1
    assert one_window_score(10) == pytest.approx(-0.11 - 1.0)


def test_false_positive_after_window_is_weighted() -> None:
    # row 26: y = (26 - 24) / (5 - 1) = 0.5  ->  0.11 * sigma(0.5) = 0.11 * -0.848284 = -0.093311; missed window -1
    expected = 0.11 * sig(0.5) - 1.0
    assert expected == pytest.approx(-1.093311, abs=1e-6)
    assert one_window_score(26) == pytest.approx(expected)


def test_false_positive_three_widths_after_window_costs_full_fp_weight() -> None:
    # row 37: y = (37 - 24) / 4 = 3.25 > 3  ->  sigma = -1 exactly
    assert one_window_score(37) == pytest.approx(-0.11 - 1.0)


def test_true_positive_plus_false_positive_after() -> None:
    # row 20: +1; row 30: y = (30 - 24) / 4 = 1.5 -> 0.11 * sigma(1.5) = -0.109878
    expected = 1.0 + 0.11 * sig(1.5)
    assert expected == pytest.approx(0.890122, abs=1e-6)
    assert one_window_score(20, 30) == pytest.approx(expected)


def test_probationary_rows_are_ignored() -> None:
    # rows 0..5 are probationary: the detection at row 3 neither scores nor costs; the window is missed
    assert one_window_score(3) == pytest.approx(-1.0)
    result = file_score(*range(N_ROWS), windows=[])
    assert (result.fp, result.tn) == (N_ROWS - 6, 0)


def test_no_detection_and_no_window_scores_zero() -> None:
    assert file_score(windows=[]).raw_score == 0.0


def test_one_row_window_then_false_positive_costs_full_fp_weight() -> None:
    # W' = 1 makes y = (i - r') / 0 infinite: the full -A_FP
    result = file_score(20, 21, windows=[window(20, 20)])
    assert result.raw_score == pytest.approx(1.0 - 0.11)


def test_cost_profile_weights_scale_scores() -> None:
    assert one_window_score(10, profile="reward_low_FN_rate") == pytest.approx(-0.11 - 2.0)
    assert one_window_score(20, 26, profile="reward_low_FP_rate") == pytest.approx(1.0 + 0.22 * sig(0.5))


def test_row_counts() -> None:
    result = file_score(21, 22, 30, windows=[window(WINDOW_START, WINDOW_END)])
    # 34 scorable rows: 5 in the window (2 detected), 29 outside (1 detected)
    assert (result.tp, result.fn, result.fp, result.tn) == (2, 3, 1, 28)
    assert (result.windows, result.windows_detected) == (1, 1)


# ---------------------------------------------------------------------------------------- corpus


def toy_corpus() -> tuple[dict[str, ResultFile], dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]]:
    a = np.zeros(N_ROWS)
    a[20], a[30], a[10] = 0.9, 0.95, 0.6  # TP at window start, FP after (y = 1.5), FP before
    b = np.zeros(N_ROWS)
    b[22], b[8] = 0.7, 0.5  # TP at y = -0.6, FP before; second window never detected
    results = {"cat/a.csv": ResultFile(TIMESTAMPS, a), "cat/b.csv": ResultFile(TIMESTAMPS, b)}
    windows = {"cat/a.csv": [window(20, 24)], "cat/b.csv": [window(20, 24), window(30, 34)]}
    return results, windows


def test_threshold_optimisation_on_two_file_corpus() -> None:
    # standard, S(theta) over both files (3 windows, base 3 * -1 = -3):
    #   1.1  : -3
    #   0.95 : -3 + 0.11 * sigma(1.5)                        = -3.109878
    #   0.9  : previous + (1 + 1)                            = -1.109878
    #   0.7  : previous + (sigma(-0.6) / sigma(-1) + 1)      =  0.807550   <- best
    #   0.6  : previous - 0.11;  0.5: previous - 0.22;  0.0: every row, dozens of FPs
    results, windows = toy_corpus()
    report = evaluate_corpus(results, windows)
    standard = report.profiles["standard"]
    expected_raw = -3 + 0.11 * sig(1.5) + 2 + sig(-0.6) / sig(-1) + 1
    assert expected_raw == pytest.approx(0.807550, abs=1e-6)
    assert standard.threshold == 0.7
    assert standard.raw_score == pytest.approx(expected_raw)
    assert standard.files["cat/a.csv"].raw_score == pytest.approx(1 + 0.11 * sig(1.5))
    assert standard.files["cat/b.csv"].raw_score == pytest.approx(sig(-0.6) / sig(-1) - 1)
    # NAB = 100 * (S - S_null) / (S_perfect - S_null), S_null = -3, S_perfect = 3
    assert standard.normalized_score == pytest.approx(100 * (expected_raw + 3) / 6)
    assert report.n_windows == 3


def test_threshold_optimisation_reward_low_fn() -> None:
    # A_FN = 2: S(1.1) = -6;  S(0.7) = a: 1 + 0.11 * sigma(1.5) = 0.890122, b: 0.917429 - 2 (second window
    # missed) = -1.082571, total -0.192449;  NAB = 100 * (S + 6) / (3 + 6) = 64.5284
    results, windows = toy_corpus()
    low_fn = evaluate_corpus(results, windows).profiles["reward_low_FN_rate"]
    expected_raw = (1 + 0.11 * sig(1.5)) + (sig(-0.6) / sig(-1) - 2)
    assert expected_raw == pytest.approx(-0.192449, abs=1e-6)
    assert low_fn.threshold == 0.7
    assert low_fn.raw_score == pytest.approx(expected_raw)
    assert low_fn.normalized_score == pytest.approx(100 * (expected_raw + 6) / 9)


def test_optimised_threshold_beats_every_candidate_by_direct_scoring() -> None:
    # The sweep (incremental, pooled over files) must agree with scoring each file at each candidate.
    rng = np.random.default_rng(7)
    results = {f"cat/{i}.csv": ResultFile(TIMESTAMPS, rng.integers(0, 12, N_ROWS) / 11) for i in range(3)}
    windows = {name: [window(12, 16), window(28, 31)] for name in results}
    for name in DEFAULT_PROFILES:
        chosen = evaluate_corpus(results, windows).profiles[name]

        def total(theta: float, name: str = name) -> float:
            detected = {
                k: ResultFile(TIMESTAMPS, (r.scores >= theta).astype(float)) for k, r in results.items()
            }
            return sum(f.raw_score for f in scores_with_detections(detected, windows, name).values())

        candidates = [1.1, *np.unique(np.concatenate([r.scores[6:] for r in results.values()]))]
        assert chosen.raw_score == pytest.approx(total(chosen.threshold))
        assert chosen.raw_score == pytest.approx(max(total(theta) for theta in candidates))


def test_point_adjusted_metrics_at_standard_threshold() -> None:
    # theta = 0.7: a's window flagged (5 TP), b's first window flagged (5 TP), b's second missed (5 FN),
    # a's row 30 flagged outside any window (1 FP)
    results, windows = toy_corpus()
    pa = evaluate_corpus(results, windows).point_adjusted
    assert (pa.tp, pa.fp, pa.fn) == (10, 1, 5)
    precision, recall = 10 / 11, 10 / 15
    assert pa.precision == pytest.approx(precision)
    assert pa.recall == pytest.approx(recall)
    assert pa.f1 == pytest.approx(2 * precision * recall / (precision + recall))  # = 10 / 13
    assert pa.f1 == pytest.approx(10 / 13)


def test_null_detector_normalises_to_zero() -> None:
    # 400 rows, probation 60, window rows 200..209. Detecting every row would gain +2 on the window but cost
    # at least 140 * 0.11 = 15.4 on the rows 60..199 before it, so the best threshold is 1.1: S = -A_FN = S_null.
    timestamps = pd.date_range("2024-01-01", periods=400, freq="h")
    null = {"cat/a.csv": ResultFile(timestamps, np.full(400, 0.5))}
    windows = {"cat/a.csv": [(timestamps[200], timestamps[209])]}
    for profile in evaluate_corpus(null, windows).profiles.values():
        assert profile.threshold == 1.1
        assert profile.normalized_score == pytest.approx(0.0)


def test_perfect_detector_normalises_to_hundred() -> None:
    results, windows = toy_corpus()
    perfect = {}
    for name in results:
        scores = np.zeros(N_ROWS)
        for start, _ in windows[name]:
            scores[TIMESTAMPS.get_loc(start)] = 1.0
        perfect[name] = ResultFile(TIMESTAMPS, scores)
    report = evaluate_corpus(perfect, windows)
    for profile in report.profiles.values():
        assert profile.normalized_score == pytest.approx(100.0)
    assert report.point_adjusted.f1 == pytest.approx(1.0)


def test_labels_without_results_is_an_error() -> None:
    results, windows = toy_corpus()
    del results["cat/b.csv"]
    with pytest.raises(ValueError, match=r"cat/b\.csv has labels but no results"):
        evaluate_corpus(results, windows)


def test_window_without_rows_is_an_error() -> None:
    results, windows = toy_corpus()
    windows["cat/a.csv"] = [(pd.Timestamp("2030-01-01"), pd.Timestamp("2030-01-02"))]
    with pytest.raises(ValueError, match=r"cat/a\.csv: window .* contains no rows"):
        evaluate_corpus(results, windows)


# ---------------------------------------------------------------------------------------- files


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def result_frame(scores: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": TIMESTAMPS, "value": 1.0, "anomaly_score": scores})


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"timestamp": TIMESTAMPS, "scores": 0.1}), r"a\.csv: missing column 'anomaly_score'"),
        (pd.DataFrame({"timestamp": TIMESTAMPS, "score": "high"}), r"a\.csv: column 'score' is NaN or not"),
        (result_frame(np.full(N_ROWS, 1.5)), r"a\.csv: column 'anomaly_score' is 1\.5 .* outside \[0, 1\]"),
        (result_frame(np.full(N_ROWS, np.nan)), r"a\.csv: column 'anomaly_score' is NaN"),
        (pd.DataFrame({"anomaly_score": [0.1]}), r"a\.csv: missing column 'timestamp'"),
    ],
)
def test_load_results_rejects_bad_input(tmp_path: Path, frame: pd.DataFrame, message: str) -> None:
    write_csv(tmp_path / "cat" / "a.csv", frame)
    with pytest.raises(ValueError, match=message):
        load_results(tmp_path)


def test_align_results_accepts_nab_names_and_reports_missing(tmp_path: Path) -> None:
    write_csv(tmp_path / "cat" / "det_a.csv", result_frame(np.zeros(N_ROWS)))
    results = load_results(tmp_path)
    aligned = align_results(results, {"cat/a.csv": TIMESTAMPS})
    assert list(aligned) == ["cat/a.csv"]
    with pytest.raises(ValueError, match=r"cat/b\.csv: data file has no results"):
        align_results(results, {"cat/b.csv": TIMESTAMPS})
    with pytest.raises(ValueError, match=r"cat/a\.csv: results have 40 rows, data has 39"):
        align_results(results, {"cat/a.csv": TIMESTAMPS[:-1]})


def test_load_windows_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_windows(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_windows(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------- CLI


def write_toy_layout(root: Path) -> tuple[Path, Path, Path]:
    results, windows = toy_corpus()
    for name, result in results.items():
        write_csv(root / "data" / name, pd.DataFrame({"timestamp": TIMESTAMPS, "value": 1.0}))
        write_csv(root / "scores" / name, result_frame(result.scores))
    labels = root / "windows.json"
    labels.write_text(json.dumps({k: [[str(s), str(e)] for s, e in v] for k, v in windows.items()}))
    return root / "data", labels, root / "scores"


def cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _group() -> None:
        """Keep `evaluate` a subcommand even when it is the only one."""

    register(app)
    return app


def test_cli_table_and_json(tmp_path: Path) -> None:
    data, labels, scores = write_toy_layout(tmp_path)
    args = ["evaluate", "--data", str(data), "--labels", str(labels), "--scores", str(scores)]
    runner = CliRunner()
    table = runner.invoke(cli_app(), args)
    assert table.exit_code == 0, table.output
    assert "reward_low_FN_rate" in table.output
    assert f"{100 * (0.807550 + 3) / 6:.2f}" in table.output  # 63.46
    as_json = runner.invoke(cli_app(), [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["profiles"]["standard"]["threshold"] == 0.7
    assert report["point_adjusted"]["f1"] == pytest.approx(10 / 13)


def test_cli_bad_input_exits_2_with_one_line_error(tmp_path: Path) -> None:
    data, labels, scores = write_toy_layout(tmp_path)
    (scores / "cat" / "b.csv").unlink()
    result = CliRunner().invoke(
        cli_app(), ["evaluate", "--data", str(data), "--labels", str(labels), "--scores", str(scores)]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: cat/b.csv: data file has no results"
    assert "Traceback" not in result.output


def test_cli_reads_tswatch_detect_output_as_is(tmp_path: Path, run_cli, tiny_models_dir: Path) -> None:
    """`tswatch detect FILE --out RESULTS/<category>/<file>.csv` then `tswatch evaluate`, nothing in between:
    the `score` column is read, its empty cells (the learning period) count as 0."""
    stamps = pd.date_range("2024-01-01", periods=400, freq="h")
    values = 10 + np.sin(np.arange(400) * 2 * np.pi / 24) + np.random.default_rng(0).normal(0, 0.1, 400)
    values[300] += 8
    data = write_csv(
        tmp_path / "data" / "cat" / "spiky.csv", pd.DataFrame({"timestamp": stamps, "value": values})
    )
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps({"cat/spiky.csv": [[str(stamps[295]), str(stamps[305])]]}))
    out = tmp_path / "results" / "cat" / "spiky.csv"
    out.parent.mkdir(parents=True)
    detected = run_cli(tiny_models_dir, "detect", str(data), "--out", str(out))
    assert detected.returncode == 0, detected.stderr
    assert pd.read_csv(out)["score"].isna().sum() >= 100  # the learning period is left empty

    args = [
        "evaluate",
        "--data",
        str(tmp_path / "data"),
        "--labels",
        str(labels),
        "--scores",
        str(out.parents[1]),
    ]
    evaluated = run_cli(tiny_models_dir, *args, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["n_files"] == 1
    assert report["point_adjusted"]["recall"] == 1.0


# ---------------------------------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.skipif(not NAB_DIR.is_dir(), reason=f"NAB dev split not found at {NAB_DIR}")
def test_real_dev_split_perfect_and_null_detectors() -> None:
    corpus = load_corpus(NAB_DIR / "data")
    windows = load_windows(NAB_DIR / "labels" / "combined_windows.json")
    nab_profiles = json.loads((NAB_DIR / "profiles.json").read_text())
    assert {
        name: CostProfile(**{key.removesuffix("Weight"): value for key, value in spec["CostMatrix"].items()})
        for name, spec in nab_profiles.items()
    } == DEFAULT_PROFILES
    windows = {name: windows[name] for name in corpus}
    perfect = {}
    for name, timestamps in corpus.items():
        scores = np.zeros(len(timestamps))
        for start, _ in windows[name]:
            scores[np.flatnonzero(timestamps == start)[0]] = 1.0
        perfect[name] = ResultFile(timestamps, scores)
    report = evaluate_corpus(perfect, windows)
    assert (report.n_files, report.n_windows) == (35, 55)
    for profile in report.profiles.values():
        assert profile.normalized_score == pytest.approx(100.0)
    null = {name: ResultFile(ts, np.full(len(ts), 0.5)) for name, ts in corpus.items()}
    for profile in evaluate_corpus(null, windows).profiles.values():
        assert profile.normalized_score == pytest.approx(0.0)
