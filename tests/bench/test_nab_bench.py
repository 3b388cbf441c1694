"""bench/nab.py drives a real server (two-file corpus) and bench/nab_perturb.py's copies stay scorable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # bench scripts import their neighbours as a script does

from app.evaluation.nab import ResultFile, evaluate_corpus, load_corpus, load_windows  # noqa: E402
from bench.nab_perturb import perturb, write_perturbed_corpus  # noqa: E402


def five_minute_series(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-01-01", periods=rows, freq="5min")
    daily = 10.0 + 3.0 * np.sin(2 * np.pi * np.arange(rows) / 288)
    values = daily + rng.normal(0.0, 0.3, rows)
    return pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values})


def write_corpus(tmp_path: Path, rows: int = 1400) -> tuple[Path, Path]:
    data = tmp_path / "data"
    windows: dict[str, list[list[str]]] = {}
    for index, category in enumerate(["catA", "catB"]):
        frame = five_minute_series(rows, seed=10 + index)
        frame.loc[1100, "value"] += 30.0
        (data / category).mkdir(parents=True)
        frame.to_csv(data / category / "series.csv", index=False)
        windows[f"{category}/series.csv"] = [[frame.timestamp[1080], frame.timestamp[1120]]]
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps(windows))
    return data, labels


def test_perturbed_copy_drops_jitters_and_keeps_order_and_windows(tmp_path: Path) -> None:
    frame = five_minute_series(4000, seed=1)
    window = (pd.Timestamp(frame.timestamp[3000]), pd.Timestamp(frame.timestamp[3100]))
    out = perturb(frame, [window], seed=7)
    stamps = pd.to_datetime(out.timestamp)
    assert 0.70 * len(frame) < len(out) < 0.85 * len(frame)  # 15 % dropped, plus the gaps
    assert stamps.is_monotonic_increasing
    intervals = np.diff(stamps.values).astype("timedelta64[s]").astype(float)
    assert intervals.max() >= 3 * 3600  # at least one multi-hour gap
    assert np.mean(intervals % 300 != 0) > 0.5  # off the 5-minute grid
    inside = (stamps >= window[0]) & (stamps <= window[1])
    assert inside.sum() > 50
    pd.testing.assert_frame_equal(out, perturb(frame, [window], seed=7))  # deterministic


def test_perturbed_copy_keeps_the_labelled_anomaly_rows() -> None:
    """A row that was never sent takes its anomaly out of the data: the random drop spares labelled rows."""
    frame = five_minute_series(4000, seed=1)
    labelled = [str(frame.timestamp[i]) for i in range(500, 3500, 100)]  # 30 rows, ~4 would drop at 15 %
    window = (pd.Timestamp(frame.timestamp[450]), pd.Timestamp(frame.timestamp[3550]))  # gaps stay outside
    out = perturb(frame, [window], seed=7, labelled=labelled)
    kept = set(out.value)
    assert all(frame.value[i] in kept for i in range(500, 3500, 100))


def test_perturbed_corpus_is_scored_with_the_same_windows(tmp_path: Path) -> None:
    data, labels = write_corpus(tmp_path)
    write_perturbed_corpus(data, labels, tmp_path / "perturbed")
    corpus = load_corpus(tmp_path / "perturbed")
    windows = load_windows(labels)
    results = {name: ResultFile(stamps, np.zeros(len(stamps))) for name, stamps in corpus.items()}
    report = evaluate_corpus(results, windows)
    assert report.n_windows == 2 and report.profiles["standard"].normalized_score == 0.0


@pytest.mark.slow
def test_command_streams_each_file_through_the_api(tmp_path: Path) -> None:
    data, labels = write_corpus(tmp_path)
    out = tmp_path / "results"
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    command = [sys.executable, str(ROOT / "bench" / "nab.py"), "--data", str(data), "--labels", str(labels)]
    run = subprocess.run(
        [*command, "--out", str(out), "--perturb"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env={**env, "TSWATCH_TORCH_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    assert "standard" in run.stdout and "sensitivity" in run.stdout, run.stdout
    for category in ("catA", "catB"):
        result = pd.read_csv(out / category / "series.csv")
        assert list(result.columns) == ["timestamp", "value", "anomaly_score"] and len(result) == 1400
        assert (result.anomaly_score[:210] == 0).all() and result.anomaly_score.between(0, 1).all()
        assert result.anomaly_score[1100] > 0.5  # far outside the range of every earlier value
        assert (tmp_path / "results-perturbed" / "results" / category / "series.csv").exists()
