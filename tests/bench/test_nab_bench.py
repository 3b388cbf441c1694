"""bench/nab.py under NAB's rules: causal scores, probation rows unscored, one result file per input."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # bench/nab.py imports its neighbours as a script does

from bench.nab import DetectorConfig, detect  # noqa: E402

pytestmark = pytest.mark.slow

FAST = replace(DetectorConfig(), epochs=2, patience=2, refit_epochs=1, refit_batches=2)


def five_minute_series(rows: int, seed: int) -> tuple[np.ndarray, pd.DatetimeIndex]:
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-01-01", periods=rows, freq="5min")
    daily = 10.0 + 3.0 * np.sin(2 * np.pi * np.arange(rows) / 288)
    return daily + rng.normal(0.0, 0.3, rows), pd.DatetimeIndex(stamps)


def test_scores_use_only_earlier_rows() -> None:
    values, stamps = five_minute_series(1400, seed=1)
    changed = values.copy()
    changed[900:] += np.random.default_rng(2).normal(0.0, 5.0, 500)  # the future differs after row 900
    original = detect(values, stamps, FAST)
    altered = detect(changed, stamps, FAST)
    np.testing.assert_array_equal(original[:900], altered[:900])
    assert not np.array_equal(original[900:], altered[900:])


def test_probation_is_unscored_and_a_spike_scores_high() -> None:
    values, stamps = five_minute_series(1400, seed=3)
    values[1100] += 40.0
    scores = detect(values, stamps, FAST)
    assert np.all(scores[:210] == 0.0) and np.all((scores >= 0.0) & (scores <= 1.0))
    assert scores[1100] == 1.0  # far outside the range of every earlier value


def test_command_writes_one_result_per_file_and_prints_profiles(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "results"
    windows: dict[str, list[list[str]]] = {}
    for index, category in enumerate(["catA", "catB"]):
        values, stamps = five_minute_series(900, seed=10 + index)
        values[700] += 30.0
        (data / category).mkdir(parents=True)
        frame = pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values})
        frame.to_csv(data / category / "series.csv", index=False)
        windows[f"{category}/series.csv"] = [[str(stamps[680]), str(stamps[720])]]
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps(windows))
    overrides = ["epochs=2", "patience=2", "refit_epochs=1", "refit_batches=2"]
    command = [sys.executable, str(ROOT / "bench" / "nab.py"), "--data", str(data), "--labels", str(labels)]
    run = subprocess.run(
        [*command, "--out", str(out), "--quiet", "--set", *overrides],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "standard" in run.stdout and "2/2" in run.stdout, run.stdout
    for category in ("catA", "catB"):
        result = pd.read_csv(out / category / "series.csv")
        assert list(result.columns) == ["timestamp", "value", "anomaly_score"] and len(result) == 900
