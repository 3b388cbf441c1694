"""`tswatch train` on input as users have it: --sep/--decimal, day-first dates, unsorted rows, gaps, several
series; notices, filled gaps and per-series metrics on the console and in --json."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from .test_train_and_models_cli import TRAIN_ARGS, flat, ok, run_parallel

pytestmark = pytest.mark.slow


@pytest.fixture
def european_csv(tmp_path):
    """Two hourly series, ';'-separated with decimal commas, day-first dates, shuffled rows, 5 points missing."""
    rng = np.random.default_rng(0)
    hours = pd.date_range("2024-01-01", periods=400, freq="h")
    frames = []
    for series, level in (("north", 10.0), ("south", 500.0)):
        values = level + 3.0 * np.sin(2 * np.pi * np.arange(400) / 24) + rng.normal(0, 0.3, 400)
        frames.append(pd.DataFrame({"site": series, "when": hours, "load": values.round(3)}))
    frame = pd.concat(frames, ignore_index=True).drop(index=[50, 51, 52, 53, 460])
    frame = frame.sample(frac=1.0, random_state=1)  # unsorted
    frame["when"] = frame["when"].dt.strftime("%d/%m/%Y %H:%M")
    frame["load"] = frame["load"].map(lambda v: f"{v}".replace(".", ","))
    path = tmp_path / "load_eu.csv"
    frame.to_csv(path, sep=";", index=False)
    return path


def test_train_reads_european_csv_and_reports_gaps_notices_and_per_series(run_cli, european_csv, tmp_path):
    common = (
        "train", str(european_csv), "--name", "eu", "--time-col", "when", "--value-col", "load",
        "--id-col", "site", "--decimal", ",", *TRAIN_ARGS,
    )  # fmt: skip
    text, as_json = run_parallel(run_cli, tmp_path / "models", common, (*common, "--json"))
    out = flat(re.sub("[│┃]", " ", ok(text).stdout))  # table cells as plain words
    assert "dates read day-first (" in out and "has a day above 12)" in out
    assert "timestamps were not in time order in 2 series" in out and "sorted them by time" in out
    assert "Filled gaps (linear in time)" in out
    assert "north 4 4" in out and "south 1 1" in out  # filled points, longest gap
    assert "Per series (test split, 2 series" in out and "vs naive" in out
    assert re.search(r"(north|south) 55 [0-9.]+ [0-9.]+ [0-9.]+ [0-9.]+ [0-9.]+ [0-9.]+", out), out

    body = json.loads(ok(as_json).stdout)
    per_series = body["metrics"]["per_series"]
    assert [s["id"] for s in per_series] == ["north", "south"]
    assert per_series[1]["model"]["mae"] > 0 and per_series[0]["test_windows"] == 55
    assert set(per_series[0]["baselines"]) == {"seasonal_naive", "random_walk"}
    assert any("day-first" in notice for notice in body["notices"])
    assert [(g["series_id"], g["missing_points"], g["largest_gap"]) for g in body["gaps"]] == [
        ("north", 4, 4),
        ("south", 1, 1),
    ]


def test_train_with_dayfirst_contradicted_by_the_data_names_the_problem(run_cli, european_csv, tmp_path):
    result = run_cli(
        tmp_path / "models", "train", str(european_csv), "--name", "eu", "--time-col", "when",
        "--value-col", "load", "--id-col", "site", "--decimal", ",", "--sep", ";", "--no-dayfirst", *TRAIN_ARGS,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--no-dayfirst was given but" in flat(result.stderr) and "can only be read day-first" in flat(
        result.stderr
    )
