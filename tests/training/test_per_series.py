"""`--per-series` without Ray: names checked before any training, one model per series, sequential."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from app.errors import InvalidInputError
from app.registry.factory import open_registry
from app.settings import Settings
from app.training.data.errors import DataValidationError
from app.training.data.prepared import prepare
from app.training.fit_tasks import FitTask, LocalRunner, SilentTaskProgress
from app.training.per_series import per_series_tasks, series_model_names, single_series, train_per_series
from tests.conftest import synthetic_frame

TINY = {"horizon": 6, "window": 24, "patch_len": 6, "hidden": 16, "epochs": 1, "patience": 1}


def fleet_frame(ids: list[str], points: int = 200) -> pd.DataFrame:
    frames = [synthetic_frame(points, seed=i).assign(host=host) for i, host in enumerate(ids)]
    return pd.concat(frames, ignore_index=True)


class CountingRunner(LocalRunner):
    def __init__(self) -> None:
        self.ran: list[str] = []

    def run(self, tasks, progress):  # type: ignore[no-untyped-def]
        self.ran += [task.name for task in tasks]
        return super().run(tasks, progress)


def test_each_series_becomes_its_own_data() -> None:
    data = prepare(fleet_frame(["a", "b"]), id_col="host", min_length=30)
    own = single_series(data, 1)
    assert [series.id for series in own.series] == ["b"]
    assert own.fingerprint != data.fingerprint
    assert own.source_rows == 200


def test_an_id_that_makes_an_invalid_model_name_is_refused_before_training() -> None:
    data = prepare(fleet_frame(["ok-1", "Bad Id"]), id_col="host", min_length=30)
    with pytest.raises(InvalidInputError, match="'Bad Id'"):
        series_model_names("fleet", data)
    runner = CountingRunner()
    with pytest.raises(InvalidInputError):
        train_per_series(data, "fleet", None, runner, SilentTaskProgress(), overrides=TINY)  # type: ignore[arg-type]
    assert runner.ran == []


def test_a_series_too_short_for_its_splits_is_refused_before_training() -> None:
    frame = pd.concat([fleet_frame(["long"]), synthetic_frame(40).assign(host="short")], ignore_index=True)
    data = prepare(frame, id_col="host", min_length=30)
    with pytest.raises(DataValidationError, match="short"):
        per_series_tasks(data, "fleet", TINY)


def test_tasks_are_named_and_configured_per_series() -> None:
    data = prepare(fleet_frame(["a", "b", "c"]), id_col="host", min_length=30)
    tasks = per_series_tasks(data, "fleet", TINY, source="fleet.csv")
    assert [task.name for task in tasks] == ["fleet-a", "fleet-b", "fleet-c"]
    assert all(isinstance(task, FitTask) and len(task.data.series) == 1 for task in tasks)
    assert {task.config.window for task in tasks} == {24}


@pytest.mark.slow
def test_local_per_series_registers_every_series(tmp_path: Path) -> None:
    data = prepare(fleet_frame(["a", "b"]), id_col="host", min_length=30)
    registry = open_registry(Settings(models_dir=tmp_path / "models"))
    try:
        results = train_per_series(
            data, "fleet", registry, LocalRunner(), SilentTaskProgress(), overrides=TINY
        )
        names = sorted(model.name for model in registry.list_models())
    finally:
        registry.database.dispose()
    assert [result.version.name for result in results] == ["fleet-a", "fleet-b"] == names
