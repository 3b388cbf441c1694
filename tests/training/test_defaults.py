"""Training defaults chosen from the data (`choose_config`), the user's options winning, choices recorded."""

import numpy as np
import pandas as pd
import pytest
import torch

from app.registry.factory import open_registry
from app.settings import Settings
from app.training.data.prepared import PreparedData, prepare
from app.training.defaults import choose_config, default_horizon
from app.training.fitting import split_bounds


def frame(points: int, freq: str, season: int, seed: int = 0, noise: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    steps = np.arange(points)
    values = 10 + 3 * np.sin(2 * np.pi * steps / season) + rng.normal(0, noise, points) if season > 1 else (
        10 + rng.normal(0, 1, points).cumsum()
    )  # fmt: skip
    return pd.DataFrame(
        {"timestamp": pd.date_range("2020-01-01", periods=points, freq=freq), "value": values}
    )


def prepared(points: int, freq: str, season: int) -> PreparedData:
    return prepare(frame(points, freq, season), min_length=2)


def chosen(choices, field):
    (choice,) = [c for c in choices if c.field == field]
    return choice


def test_hourly_series_with_a_daily_season() -> None:
    config, choices = choose_config(prepared(3000, "h", 24), {})
    assert config.horizon == 24
    assert config.window == 336 and config.patch_len == 24  # 14 seasons, one token per season
    assert config.normalisation == "last"  # horizon within one season
    assert config.baseline == "seasonal" and config.season == 24
    assert config.calendar is False
    assert all(c.source == "data" and c.reason for c in choices)
    assert "season 24" in chosen(choices, "window").reason


def test_window_follows_the_season_and_is_capped_by_the_length() -> None:
    config, _ = choose_config(prepared(144, "MS", 12), {})
    assert config.horizon == 12
    assert config.window % config.patch_len == 0
    split_bounds(prepare(frame(144, "MS", 12), min_length=2), config)  # every split still has a window
    assert config.window < 12 * 14


def test_no_season_uses_horizons_and_the_last_value() -> None:
    config, _ = choose_config(prepared(2000, "D", 1), {"horizon": 14})
    assert config.baseline == "last"
    assert config.window >= 3.5 * 14 and config.window % config.patch_len == 0
    assert config.window // config.patch_len <= 32


def test_the_users_options_win_and_are_recorded_as_theirs() -> None:
    config, choices = choose_config(prepared(3000, "h", 24), {"window": 96, "hidden": 16, "baseline": "none"})
    assert (config.window, config.hidden, config.baseline) == (96, 16, "none")
    assert config.window % config.patch_len == 0
    assert {c.field for c in choices if c.source == "user"} == {"window", "hidden", "baseline"}
    assert not [c for c in choices if c.field == "window" and c.source == "data"]


def test_a_given_patch_length_reshapes_the_chosen_window() -> None:
    config, _ = choose_config(prepared(3000, "h", 24), {"patch_len": 10})
    assert config.patch_len == 10 and config.window % 10 == 0


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown training option"):
        choose_config(prepared(500, "h", 24), {"windw": 3})


@pytest.mark.parametrize(
    ("frequency", "horizon"),
    [
        ("h", 24),
        ("30min", 48),
        ("15min", 96),
        ("D", 14),
        ("W-SUN", 13),
        ("MS", 12),
        ("QS-JAN", 8),
        ("YS-JAN", 4),
    ],
)
def test_horizon_default_by_frequency(frequency: str, horizon: int) -> None:
    assert default_horizon(frequency)[0] == horizon


@pytest.mark.slow
def test_training_without_a_config_records_the_choices(tmp_path) -> None:
    from app.training.pipeline import train_model

    torch.set_num_threads(1)
    registry = open_registry(Settings(models_dir=tmp_path / "models"))
    try:
        data = prepare(frame(400, "h", 24), min_length=2)
        result = train_model(data, "auto", registry, overrides={"epochs": 1, "hidden": 8})
        training = result.manifest.training
        assert training.config.epochs == 1 and training.config.hidden == 8
        assert {c.field for c in training.choices if c.source == "user"} == {"epochs", "hidden"}
        assert chosen(training.choices, "baseline").value == result.manifest.spec.baseline != "none"
        loaded = registry.load(result.version)
        assert loaded.manifest.training.choices == training.choices
        assert loaded.forecaster.spec == result.manifest.spec
    finally:
        registry.database.dispose()


@pytest.mark.parametrize(
    ("points", "frequency", "season"), [(20, "QS-JAN", 4), (20, "YS-JAN", 1), (48, "h", 24)]
)
def test_short_series_get_a_horizon_and_window_every_split_holds(
    points: int, frequency: str, season: int
) -> None:
    data = prepared(points, frequency, season)
    config, choices = choose_config(data, {})
    split_bounds(data, config)  # raises if a split has no window
    assert config.horizon < default_horizon(frequency)[0]
    assert "cut to what" in chosen(choices, "horizon").reason
