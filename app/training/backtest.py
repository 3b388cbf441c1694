"""Rolling-origin evaluation (a backtest) of a registered forecaster or of a training configuration.

Origins are counted back from each series' end: the last origin forecasts the series' last `horizon` points,
the ones before it lie `stride` points apart. A registered model forecasts from every origin with its stored
weights. A configuration is fitted on the data before the first origin and, with `refit_every` K, refitted on
all the data before every K-th origin (an expanding window); each fit forecasts only from origins after its
data. Both are scored per horizon step against seasonal naive (the season detected on the data before the first
origin) and the random walk (`backtest_scores`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from app.forecasting.forecaster import Forecaster
from app.forecasting.quantiles import MEDIAN, interpolate_quantile, interval_quantiles
from app.forecasting.windows import SplitBounds
from app.timestamps import datetime64_to_iso_z
from app.training.backtest_scores import (
    OriginForecasts,
    ScoreTable,
    interval_levels,
    level_key,
    score_table,
)
from app.training.config import TrainingConfig
from app.training.data.errors import DataValidationError
from app.training.data.prepared import PreparedData, fingerprint
from app.training.data.seasons import detect_season
from app.training.data.series import SeriesData
from app.training.defaults import choose_config
from app.training.fitting import fit_forecaster
from app.training.trainer import TrainingProgress

DEFAULT_ORIGINS = 10
SAMPLE_HISTORY_HORIZONS = 3  # the plotted origin shows this many horizons of history before it
MIN_SAMPLE_HISTORY = 24
MIN_CHOICE_POINTS = 8

FitProgress = Callable[[int, int], TrainingProgress | None]
"""(fit number from 1, number of fits) -> the progress of that fit, or None for none."""


@dataclass(frozen=True)
class OriginPlan:
    horizon: int
    origins: int = DEFAULT_ORIGINS
    stride: int | None = None  # None: one horizon, so consecutive origins' forecasts tile the series

    def __post_init__(self) -> None:
        for name in ("horizon", "origins", "stride"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DataValidationError(f"--{name} must be at least 1 (got {value})")

    @property
    def step(self) -> int:
        return self.stride if self.stride is not None else self.horizon

    def span(self) -> int:
        """Points from the first origin to the end of the series."""
        return self.horizon + self.step * (self.origins - 1)

    def positions(self, length: int) -> np.ndarray:
        """Origins of a series of `length` points, oldest first: [N]."""
        back = self.step * np.arange(self.origins - 1, -1, -1)
        return length - self.horizon - back


MinBefore = Callable[[int], int]
"""horizon -> the points a series needs before its first origin."""


@dataclass(frozen=True)
class OriginSample:
    """The last origin of the first series: its history, the actuals and the model's forecast with bands."""

    series: str
    history_timestamps: list[str]
    history: list[float]
    timestamps: list[str]
    actual: list[float]
    median: list[float]
    bands: dict[str, tuple[list[float], list[float]]]  # level -> (lower, upper)


@dataclass(frozen=True)
class BacktestResult:
    subject: str  # "cpu v3", or "configuration" for a training configuration
    mode: Literal["model", "config"]
    horizon: int
    origins: int
    stride: int
    season: int
    series: int
    fits: int  # 0 for a registered model
    refit_every: int | None
    levels: list[float]
    origin_times: list[str]  # of the first series
    scores: ScoreTable
    sample: OriginSample
    config: dict[str, Any] | None = None
    choices: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for row in (*data["scores"]["per_step"], data["scores"]["overall"]):
            row["label"] = row_label(row["first"], row["last"])
        return data


def row_label(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


# ------------------------------------------------------------------------------------------------ checks
def _largest(candidates: range, fits: Callable[[int], bool]) -> int | None:
    return next((value for value in candidates if fits(value)), None)


def _suggestions(length: int, plan: OriginPlan, min_before: MinBefore) -> list[str]:
    """The --origins, --stride or --horizon (each changed alone) that would fit a series of `length`."""
    room = length - plan.horizon - min_before(plan.horizon)
    hints = []
    if room >= 0:
        hints.append(f"--origins {room // plan.step + 1}")
        if plan.origins > 1 and room // (plan.origins - 1) >= 1:
            hints.append(f"--stride {room // (plan.origins - 1)}")

    def horizon_fits(horizon: int) -> bool:
        shorter = replace(plan, horizon=horizon)
        return length - shorter.span() >= min_before(horizon)

    horizon = _largest(range(plan.horizon - 1, 0, -1), horizon_fits)
    if horizon is not None:
        hints.append(f"--horizon {horizon}")
    return hints


def check_plan(data: PreparedData, plan: OriginPlan, min_before: MinBefore, why: str) -> None:
    """Every series must hold `min_before` points before its first origin; else say what would fit."""
    needed = min_before(plan.horizon)
    shortest = min(data.series, key=len)
    if len(shortest) - plan.span() >= needed:
        return
    hints = _suggestions(len(shortest), plan, min_before)
    fix = f"try {' or '.join(hints)}, or supply more data" if hints else "supply more data"
    raise DataValidationError(
        f"series {shortest.id!r} has {len(shortest)} points: {plan.origins} origins {plan.step} apart with "
        f"horizon {plan.horizon} need {plan.span()} points from the first origin on and {needed} before it "
        f"({why}), {plan.span() + needed} in all; {fix}"
    )


def min_fit_length(config: TrainingConfig, horizon: int) -> int:
    """The fewest points a configuration fits on: one window in each of the train, validation and test splits."""
    first = config.window + horizon
    for length in range(first, 100 * first):
        bounds = SplitBounds.from_fractions(length, config.val_fraction, config.test_fraction)
        if all(len(bounds.origins(part, config.window, horizon)) for part in ("train", "val", "test")):
            return length
    return 100 * first


# ------------------------------------------------------------------------------------------------ forecasts
def truncated(data: PreparedData, ends: Sequence[int]) -> PreparedData:
    """Each series cut before its end index: what was known at those origins."""
    series = [
        SeriesData(s.id, s.timestamps[:end], s.values[:end]) for s, end in zip(data.series, ends, strict=True)
    ]
    return replace(data, series=series, gaps=[], fingerprint=fingerprint(series))


def forecast_from(
    forecaster: Forecaster, series: SeriesData, origins: np.ndarray, horizon: int
) -> np.ndarray:
    """Quantile forecasts of the first `horizon` steps from each origin: [K] -> [K, H, Q]."""
    index = origins[:, None] + np.arange(-forecaster.spec.window, 0)[None, :]  # [K, 1] + [1, L] -> [K, L]
    calendar = forecaster.calendar(series.timestamps[index]) if forecaster.uses_calendar else None
    quantiles: np.ndarray = forecaster.predict(series.values[index], calendar)[:, :horizon]
    return quantiles


def _season(data: PreparedData, first_origins: Sequence[int]) -> int:
    """Detected on the data before the first origin of the longest series; every series must reach back one."""
    longest = max(range(len(data.series)), key=lambda i: len(data.series[i]))
    season = detect_season(data.series[longest].values[: first_origins[longest]], data.frequency)
    return season if all(origin >= season for origin in first_origins) else 1


def _sample(item: OriginForecasts, quantiles: tuple[float, ...]) -> OriginSample:
    origin = int(item.origins[-1])
    forecast = item.quantiles[-1].astype(np.float64)  # [H, Q]
    horizon = len(forecast)
    start = max(0, origin - max(MIN_SAMPLE_HISTORY, SAMPLE_HISTORY_HORIZONS * horizon))
    series = item.series

    def stamps(values: np.ndarray) -> list[str]:
        return datetime64_to_iso_z(values) or []

    return OriginSample(
        series=series.id,
        history_timestamps=stamps(series.timestamps[start:origin]),
        history=[float(v) for v in series.values[start:origin]],
        timestamps=stamps(series.timestamps[origin : origin + horizon]),
        actual=[float(v) for v in series.values[origin : origin + horizon]],
        median=[float(v) for v in interpolate_quantile(forecast, quantiles, MEDIAN)],
        bands={
            level_key(level): (
                [float(v) for v in interpolate_quantile(forecast, quantiles, low)],
                [float(v) for v in interpolate_quantile(forecast, quantiles, high)],
            )
            for level in interval_levels(quantiles)
            for low, high in [interval_quantiles(level)]
        },
    )


def _result(
    data: PreparedData,
    forecasts: list[OriginForecasts],
    quantiles: tuple[float, ...],
    plan: OriginPlan,
    **fields: Any,
) -> BacktestResult:
    season = _season(data, [int(item.origins[0]) for item in forecasts])
    first = forecasts[0]
    return BacktestResult(
        horizon=plan.horizon,
        origins=plan.origins,
        stride=plan.step,
        season=season,
        series=len(data.series),
        levels=interval_levels(quantiles),
        origin_times=datetime64_to_iso_z(first.series.timestamps[first.origins]) or [],
        scores=score_table(forecasts, quantiles, season),
        sample=_sample(first, quantiles),
        **fields,
    )


# ------------------------------------------------------------------------------------------------ runs
def backtest_model(
    data: PreparedData, forecaster: Forecaster, plan: OriginPlan, subject: str
) -> BacktestResult:
    """Forecast from every origin with a registered model's stored weights (no refit)."""
    spec = forecaster.spec
    if plan.horizon > spec.horizon:
        raise DataValidationError(
            f"--horizon {plan.horizon} is beyond {subject}'s horizon of {spec.horizon}; use --horizon "
            f"{spec.horizon} or less"
        )
    if data.frequency != spec.frequency:
        raise DataValidationError(
            f"the data's frequency is {data.frequency!r} but {subject} was trained on {spec.frequency!r} data"
        )
    check_plan(data, plan, lambda _horizon: spec.window, f"the model's window of {spec.window}")
    forecasts = []
    for series in data.series:
        origins = plan.positions(len(series))
        forecasts.append(
            OriginForecasts(series, origins, forecast_from(forecaster, series, origins, plan.horizon))
        )
    return _result(
        data, forecasts, spec.quantiles, plan, subject=subject, mode="model", fits=0, refit_every=None
    )


def fit_groups(origins: int, refit_every: int | None) -> list[range]:
    """Origin indices served by each fit: one fit for all, or a new fit every `refit_every` origins."""
    every = origins if refit_every is None else refit_every
    return [range(start, min(start + every, origins)) for start in range(0, origins, every)]


def resolve_config(
    data: PreparedData, overrides: Mapping[str, object], origins: int, stride: int | None
) -> tuple[TrainingConfig, OriginPlan, list[dict[str, Any]]]:
    """The configuration and origins of a configuration backtest.

    Fields the user did not give are chosen by `choose_config` on the data before the first origin only, so
    the choice sees nothing it is scored on (the horizon, unless given, from the whole data: it depends only
    on the frequency).
    """
    horizon = overrides.get("horizon")
    if not isinstance(horizon, int):
        horizon = choose_config(data, overrides)[0].horizon
    plan = OriginPlan(horizon=horizon, origins=origins, stride=stride)
    check_plan(data, plan, lambda _horizon: MIN_CHOICE_POINTS, "to choose a configuration from")
    known = truncated(data, [int(plan.positions(len(series))[0]) for series in data.series])
    config, choices = choose_config(known, {**overrides, "horizon": horizon})
    return config, plan, [asdict(choice) for choice in choices]


def backtest_config(
    data: PreparedData,
    config: TrainingConfig,
    plan: OriginPlan,
    refit_every: int | None = None,
    progress: FitProgress | None = None,
    choices: Sequence[dict[str, Any]] = (),
) -> BacktestResult:
    """Fit `config` on the data before the first origin (and again every `refit_every` origins), forecast."""
    if refit_every is not None and refit_every < 1:
        raise DataValidationError(f"--refit-every must be at least 1 (got {refit_every})")
    config = replace(config, horizon=plan.horizon)
    check_plan(
        data,
        plan,
        lambda horizon: min_fit_length(config, horizon),
        f"a fit with window {config.window} needs a train, validation and test split",
    )
    positions = [plan.positions(len(series)) for series in data.series]  # per series [N]
    groups = fit_groups(plan.origins, refit_every)
    parts: list[list[np.ndarray]] = [[] for _ in data.series]
    for number, group in enumerate(groups, start=1):
        known = truncated(data, [int(origins[group.start]) for origins in positions])
        fitted = fit_forecaster(known, config, None if progress is None else progress(number, len(groups)))
        for index, series in enumerate(data.series):
            origins = positions[index][group.start : group.stop]
            parts[index].append(forecast_from(fitted.forecaster, series, origins, plan.horizon))
    forecasts = [
        OriginForecasts(series, origins, np.concatenate(chunks))
        for series, origins, chunks in zip(data.series, positions, parts, strict=True)
    ]
    return _result(
        data,
        forecasts,
        tuple(config.quantiles),
        plan,
        subject="configuration",
        mode="config",
        fits=len(groups),
        refit_every=refit_every,
        config=config.to_dict(),
        choices=list(choices),
    )
