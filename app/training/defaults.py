"""Training defaults chosen from the data: every field the user did not give gets a value and a reason.

The rules (from the measured notes on RNNs in ../shared/notes and the ETT validation months, never the test
months; README "Training defaults"):

- horizon: one natural cycle ahead for the frequency: a day of steps below a day (at most 96: hourly 24,
  half-hourly 48, 15-minute 96), daily 14, business-daily 10, weekly 13, monthly 12, quarterly 8, yearly 4;
  cut to what the shortest series' validation and test splits hold.
- season m: detected on the training rows of the longest series (1 = none).
- cycle c: the season m, else the frequency's shortest natural cycle (a day of hourly steps, a week of days,
  a year of months): the detector needs a clear ACF peak, and series such as ETTh1's OT have a daily cycle
  too weak for it that a window of whole days still serves.
- window: about 14 cycles (two weeks of an hourly series, 14 years of a monthly one), at least 2 cycles
  and 3.5 horizons, at most 512 steps (training cost) and at most what leaves the shortest series' training
  split a third of its rows as origins. Without a cycle: 3.5 horizons, at least 32 steps.
- patch_len: the cycle when the window holds 4..32 of them (one token per cycle, as the notes' best runs),
  otherwise the smallest divisor of the window giving at most 32 tokens. Patches shorten the recurrence
  8-48x at the same accuracy, which is what makes training take seconds.
- hidden 128 when there are at least 2,000 training windows, else 64 (64 vs 128 made no difference on ETT,
  smaller is safer on short series); 1 layer, no dropout.
- normalisation: subtract the window's last value when the horizon is at most one cycle (short range: the
  level matters most; 0.0255 vs 0.0270 at H=24 on ETTh1 in the notes), per-window mean/std otherwise.
- baseline: the network learns a correction to the naive forecast (seasonal naive with c, or the last
  value) with the lower validation MAE on the data, so an untrained network already forecasts at naive level.
- calendar features off when the window spans at least two cycles (the model sees the cycle itself).
- epochs: enough for ~3,000 gradient steps, between 30 and 300; patience 5 (10 on short series).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields

import numpy as np
import pandas as pd

from app.forecasting.metrics import seasonal_naive_forecast
from app.forecasting.windows import SplitBounds
from app.training.config import Choice, ChoiceValue, TrainingConfig
from app.training.data.prepared import PreparedData
from app.training.data.seasons import detect_season, natural_periods

__all__ = ["Choice", "choose_config"]

SEASONS_PER_WINDOW = 14
HORIZONS_PER_WINDOW = 3.5
MAX_WINDOW = 512
MIN_WINDOW = 32
MAX_TOKENS = 16
LARGE_TRAINING_SET = 2_000
TARGET_STEPS = 3_000
MIN_EPOCHS, MAX_EPOCHS = 30, 300

_CALENDAR_HORIZONS = {"D": 14, "B": 10, "W": 13, "M": 12, "Q": 8, "Y": 4, "A": 4}


def default_horizon(frequency: str) -> tuple[int, str]:
    """Horizon worth forecasting at a frequency, with the reason."""
    offset = pd.tseries.frequencies.to_offset(frequency)
    if isinstance(offset, pd.offsets.Tick):
        step = pd.Timedelta(offset).total_seconds()
        if step < 86_400:
            per_day = int(86_400 // step)
            return min(per_day, 96), f"one day of {frequency} steps (at most 96)"
        return 14 if step == 86_400 else max(1, int(14 * 86_400 // step)), "two weeks ahead"
    code = offset.rule_code.upper()[:1]
    horizon = _CALENDAR_HORIZONS.get(code, 12)
    return max(1, horizon // max(offset.n, 1)), f"the usual planning horizon for {frequency} data"


def _season(data: PreparedData, config: TrainingConfig) -> int:
    index = max(range(len(data.series)), key=lambda i: len(data.series[i].values))
    values = data.series[index].values
    bounds = SplitBounds.from_fractions(len(values), config.val_fraction, config.test_fraction)
    return detect_season(values[: bounds.train_end], data.frequency)


def _cycle(season: int, frequency: str) -> tuple[int, str]:
    """The period the window and patches are measured in: the detected season, else the frequency's
    shortest natural cycle (a day of hourly steps, a week of days, a year of months)."""
    if season > 1:
        return season, f"detected season {season}"
    natural = natural_periods(frequency)
    if natural:
        return natural[0], f"no season detected; natural cycle {natural[0]} of {frequency} data"
    return 1, "no season detected"


def _horizon_room(data: PreparedData, config: TrainingConfig) -> int:
    """Largest horizon the shortest series' validation and test splits each hold."""
    shortest = min(len(s.values) for s in data.series)
    bounds = SplitBounds.from_fractions(shortest, config.val_fraction, config.test_fraction)
    return min(bounds.val_end - bounds.train_end, bounds.length - bounds.val_end)


def _window_cap(data: PreparedData, config: TrainingConfig, horizon: int) -> int:
    """Largest window leaving the shortest series a third of its training rows as training origins."""
    shortest = min(len(s.values) for s in data.series)
    train_end = SplitBounds.from_fractions(shortest, config.val_fraction, config.test_fraction).train_end
    return max(2, min(MAX_WINDOW, (2 * train_end) // 3 - horizon + 1, train_end - horizon))


def choose_window(season: int, horizon: int, cap: int) -> tuple[int, str]:
    floor = math.ceil(HORIZONS_PER_WINDOW * horizon)
    if season > 1:
        seasons = max(2, SEASONS_PER_WINDOW, math.ceil(floor / season))
        if seasons * season > cap:
            seasons = max(1, min(seasons, cap // season))
        window = seasons * season if seasons * season <= cap else cap
        return max(2, window), (
            f"{window // season if window % season == 0 else window / season:g} seasons of {season} "
            f"(aim {SEASONS_PER_WINDOW}, at least {HORIZONS_PER_WINDOW} horizons, at most {cap} for the data)"
        )
    window = max(2, min(cap, max(MIN_WINDOW, floor)))
    return (
        window,
        f"no season detected: {HORIZONS_PER_WINDOW} horizons (at least {MIN_WINDOW}, at most {cap})",
    )


def choose_patch(window: int, season: int) -> tuple[int, str]:
    if season > 1 and window % season == 0 and 4 <= window // season <= 2 * MAX_TOKENS:
        return season, f"one token per season ({window // season} tokens)"
    for patch in range(1, window + 1):
        if window % patch == 0 and window // patch <= 2 * MAX_TOKENS:
            return patch, f"smallest divisor of the window giving at most {2 * MAX_TOKENS} tokens"
    return window, "the whole window as one token"


def naive_validation_mae(data: PreparedData, config: TrainingConfig, season: int) -> float:
    """Validation MAE of the `season`-naive forecast, each series in units of its training std."""
    total, count = 0.0, 0
    for series in data.series:
        values = np.asarray(series.values, dtype=np.float64)
        bounds = SplitBounds.from_fractions(len(values), config.val_fraction, config.test_fraction)
        origins = bounds.origins("val", max(config.window, season), config.horizon)
        if not len(origins):
            continue
        spread = float(np.std(values[: bounds.train_end])) or 1.0
        targets = values[origins[:, None] + np.arange(config.horizon)[None, :]]  # [K, H]
        errors = seasonal_naive_forecast(values, origins, config.horizon, season) - targets
        total += float(np.abs(errors).sum()) / spread
        count += errors.size
    return total / count if count else math.inf


def choose_baseline(data: PreparedData, config: TrainingConfig, season: int) -> tuple[str, str]:
    last = naive_validation_mae(data, config, 1)
    if season < 2 or season > config.window:
        return "last", f"no usable season; last value (validation MAE {last:.3g} in std units)"
    seasonal = naive_validation_mae(data, config, season)
    if seasonal < last:
        return "seasonal", f"seasonal naive beats last value on validation ({seasonal:.3g} vs {last:.3g})"
    return "last", f"last value beats seasonal naive on validation ({last:.3g} vs {seasonal:.3g})"


def _training_windows(data: PreparedData, config: TrainingConfig) -> int:
    total = 0
    for series in data.series:
        bounds = SplitBounds.from_fractions(len(series.values), config.val_fraction, config.test_fraction)
        total += len(bounds.origins("train", config.window, config.horizon))
    return total


class _Chooser:
    """Applies one rule at a time; a field the user gave keeps its value and is recorded as theirs."""

    def __init__(self, overrides: Mapping[str, object]) -> None:
        known = {f.name for f in fields(TrainingConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
        self.overrides = {key: value for key, value in overrides.items() if value is not None}
        start = dict(self.overrides)
        patch = start.get("patch_len")
        if isinstance(patch, int) and patch >= 1 and "window" not in start:
            start["window"] = patch * max(2, math.ceil(TrainingConfig.window / patch))
        self.config = TrainingConfig(**start)  # type: ignore[arg-type]  # checked by __post_init__
        self.choices: list[Choice] = []

    def set(self, name: str, value: ChoiceValue, reason: str) -> None:
        if name in self.overrides:
            return
        self.config = TrainingConfig(**{**self.config.to_dict(), name: value})  # type: ignore[arg-type]
        self.choices.append(Choice(name, value, reason, "data"))

    def finish(self) -> tuple[TrainingConfig, list[Choice]]:
        given = [Choice(name, _plain(value), "given", "user") for name, value in self.overrides.items()]
        return self.config, given + self.choices


def _plain(value: object) -> ChoiceValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def choose_config(data: PreparedData, overrides: Mapping[str, object]) -> tuple[TrainingConfig, list[Choice]]:
    """A configuration for `data`: the user's fields as given, every other architecture field by rule."""
    chooser = _Chooser(overrides)
    horizon, reason = default_horizon(data.frequency)
    room = _horizon_room(data, chooser.config)
    if room < horizon:
        horizon, reason = max(1, room), f"{reason}, cut to what the validation/test split of the data holds"
    chooser.set("horizon", horizon, reason)
    config = chooser.config
    season = _season(data, config) if config.season is None else config.season
    cycle, cycle_reason = _cycle(season, data.frequency)
    window, reason = choose_window(cycle, config.horizon, _window_cap(data, config, config.horizon))
    if "patch_len" in chooser.overrides:  # the user's patch must divide the chosen window
        window = max(config.patch_len, window - window % config.patch_len)
    chooser.set("window", window, f"{reason}; {cycle_reason}")
    patch, reason = choose_patch(chooser.config.window, cycle)
    chooser.set("patch_len", patch, reason)
    windows = _training_windows(data, chooser.config)
    large = windows >= LARGE_TRAINING_SET
    chooser.set("hidden", 128 if large else 64, f"{windows} training windows")
    chooser.set("layers", 1, "one layer: a second made no difference on ETT")
    chooser.set("dropout", 0.0, "early stopping on validation regularises enough")
    short = cycle > 1 and config.horizon <= cycle
    chooser.set(
        "normalisation",
        "last" if short else "instance",
        "horizon within one season: subtract the last value"
        if short
        else "horizon beyond one season: per-window mean/std",
    )
    baseline, reason = choose_baseline(data, chooser.config, cycle)
    chooser.set("baseline", baseline, reason)
    if chooser.config.baseline == "seasonal":
        chooser.set("season", cycle, cycle_reason)
    spans = cycle > 1 and chooser.config.window >= 2 * cycle
    chooser.set(
        "calendar",
        False if spans else None,
        f"the window spans {chooser.config.window // cycle} cycles of {cycle}"
        if spans
        else "frequency default",
    )
    batches = max(1, math.ceil(windows / chooser.config.batch_size))
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / batches)))
    chooser.set("epochs", epochs, f"about {TARGET_STEPS} steps at {batches} batches per epoch")
    chooser.set("patience", 5 if batches >= 10 else 10, f"{batches} batches per epoch")
    return chooser.finish()
