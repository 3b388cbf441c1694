"""The configuration search: its space around the data-driven defaults, and a local run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.registry.factory import open_registry
from app.settings import Settings
from app.training.config import TrainingConfig
from app.training.data.prepared import prepare
from app.training.defaults import choose_config
from app.training.fit_tasks import LocalRunner, SilentTaskProgress
from app.training.search import candidate_configs, changes, search_configs, train_with_search
from tests.conftest import synthetic_frame

DATA = prepare(synthetic_frame(600), min_length=30)


def test_trial_zero_is_the_default_configuration_and_the_order_is_seeded() -> None:
    base, _ = choose_config(DATA, {"horizon": 6})
    first = search_configs(DATA, base, {"horizon"}, 5)
    assert first[0] == base
    assert len(first) == len(set(first)) == 5
    assert search_configs(DATA, base, {"horizon"}, 5) == first


def test_the_space_varies_window_patch_hidden_and_lr_around_the_defaults() -> None:
    base, _ = choose_config(DATA, {"horizon": 6})
    candidates = candidate_configs(DATA, base, {"horizon"})
    varied = {name for config in candidates for name in changes(base, config)}
    assert varied == {"window", "patch_len", "hidden", "lr"}
    assert {config.hidden for config in candidates} == {64, 128}
    assert {config.lr for config in candidates} == {base.lr, base.lr * 3}
    for config in candidates:
        assert config.window % config.patch_len == 0


def test_fields_the_user_gave_are_never_searched() -> None:
    base, _ = choose_config(DATA, {"horizon": 6, "window": 48, "hidden": 32})
    candidates = candidate_configs(DATA, base, {"horizon", "window", "hidden"})
    assert {config.window for config in candidates} == {48}
    assert {config.hidden for config in candidates} == {32}
    assert len(candidates) > 1  # patch length and learning rate still vary


def test_at_least_one_trial() -> None:
    with pytest.raises(ValueError, match="at least 1 trial"):
        search_configs(DATA, TrainingConfig(), set(), 0)


@pytest.mark.slow
def test_local_search_registers_the_best_trial_with_every_trial_recorded(tmp_path: Path) -> None:
    registry = open_registry(Settings(models_dir=tmp_path / "models"))
    try:
        overrides = {"horizon": 6, "epochs": 2, "patience": 2}
        result = train_with_search(
            DATA, "best", registry, LocalRunner(), SilentTaskProgress(), 3, overrides=overrides
        )
        _, stored = registry.version_manifest("best", result.version.version)
    finally:
        registry.database.dispose()
    trials = stored.training.search
    assert [trial.number for trial in trials] == [0, 1, 2]
    chosen = [trial for trial in trials if trial.chosen]
    assert len(chosen) == 1 and chosen[0].validation_mae == min(trial.validation_mae for trial in trials)
    assert stored.training.config == chosen[0].config
    searched = {choice.field for choice in stored.training.choices if choice.source == "search"}
    assert searched == set(chosen[0].changes)
