"""`tswatch detect FILE`: without `--model` the self-learning detector writes exactly `detect_series`'s scores;
rows are read as they are (empty values, repeated and late stamps are readings, not errors); with `--model` the
scores are a fold of `score_reading` with that model; a short file is refused with the fix."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from app.anomaly import Detector, DetectorConfig, detect_series
from app.registry.factory import open_registry
from app.serving.model_forecasts import ModelForecasts, score_reading
from app.settings import Settings

from ..serving.test_detection import quirky

pytestmark = pytest.mark.slow  # runs the CLI in subprocesses
COLUMNS = ["series", "index", "timestamp", "value", "expected", "lower", "upper", "score", "is_anomaly"]


def write_quirky(path: Path) -> tuple[list[datetime], list[float | None]]:
    stamps, values = quirky()
    pd.DataFrame({"timestamp": stamps, "value": values}).to_csv(path, index=False)
    return stamps, values


def read_scores(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    assert list(frame.columns) == [*COLUMNS, "direction", "sampling"]
    return frame


def assert_scores(frame: pd.DataFrame, expected: list) -> None:
    assert len(frame) == len(expected)
    for column in ("value", "expected", "lower", "upper", "score"):
        want = np.array([np.nan if getattr(p, column) is None else getattr(p, column) for p in expected])
        np.testing.assert_array_equal(frame[column].to_numpy(dtype=float), want, err_msg=column)
    assert frame["is_anomaly"].tolist() == [p.is_anomaly for p in expected]
    assert frame["sampling"].tolist() == [p.sampling for p in expected]


def test_model_less_detect_writes_detect_series_scores(
    run_cli, tiny_models_dir: Path, tmp_path: Path
) -> None:
    data, out = tmp_path / "quirky.csv", tmp_path / "scores.csv"
    stamps, values = write_quirky(data)
    args = ["detect", str(data), "--out", str(out), "--sensitivity", "0.8", "--learning-points", "60"]
    result = run_cli(tiny_models_dir, *args)
    assert result.returncode == 0, result.stderr
    assert "self-learning" in result.stdout and "learning_points 60" in result.stdout
    frame = read_scores(out)
    assert_scores(frame, detect_series(stamps, values, DetectorConfig(learning_points=60), 0.8))
    assert set(frame["sampling"]) >= {"regular", "gap", "missing", "duplicate", "late"}


def test_model_detect_folds_score_reading_and_short_files_are_refused(
    run_cli, tiny_models_dir: Path, tmp_path: Path
) -> None:
    data, out = tmp_path / "quirky.csv", tmp_path / "scores.csv"
    stamps, values = write_quirky(data)
    args = ("detect", str(data), "--model", "tiny@1", "--out", str(out))
    result = run_cli(tiny_models_dir, *args, TSWATCH_TORCH_THREADS="1")
    assert result.returncode == 0, result.stderr
    torch.set_num_threads(1)  # the same float arithmetic as the CLI's
    registry = open_registry(Settings(models_dir=tiny_models_dir))
    forecaster = registry.load(registry.resolve("tiny", version=1)).forecaster
    detector, forecasts = Detector(), ModelForecasts(forecaster)
    expected = [score_reading(detector, forecasts, t, v) for t, v in zip(stamps, values, strict=True)]
    frame = read_scores(out)
    np.testing.assert_allclose(
        frame["expected"], [np.nan if p.expected is None else p.expected for p in expected]
    )
    assert frame["sampling"].tolist() == [p.sampling for p in expected]

    short = tmp_path / "short.csv"
    pd.DataFrame({"timestamp": stamps[:50], "value": values[:50]}).to_csv(short, index=False)
    refused = run_cli(tiny_models_dir, "detect", str(short))
    assert refused.returncode != 0
    message = " ".join((refused.stdout + refused.stderr).split())
    assert "50 readings" in message and "at least 101" in message and "learning_points" in message
