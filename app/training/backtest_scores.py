"""Scores of a backtest: per horizon step and overall, the model next to seasonal naive and the random walk.

Every origin contributes one row of H errors. MASE divides each row by its own scale, the in-sample MAE of the
seasonal naive forecast on the data before that origin (what was known then), so a scale never sees the
points it judges. Interval coverage is the share of actuals inside the model's calibrated bands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.forecasting.metrics import (
    interval_coverage,
    mae,
    naive_scale,
    rmse,
    scaled_mae,
    seasonal_naive_forecast,
)
from app.forecasting.quantiles import MEDIAN, available_levels, interpolate_quantile, interval_quantiles
from app.training.data.series import SeriesData

INTERVAL_LEVELS = (80.0, 95.0)
FORECASTERS = ("model", "seasonal_naive", "random_walk")


@dataclass(frozen=True)
class OriginForecasts:
    """One series' quantile forecasts from its origins (the index of each first forecast point)."""

    series: SeriesData
    origins: np.ndarray  # [K]
    quantiles: np.ndarray  # [K, H, Q] data units


@dataclass(frozen=True)
class Scores:
    mae: float
    rmse: float
    mase: float | None  # None: no origin had a seasonal-naive scale


@dataclass(frozen=True)
class StepScores:
    """Scores over the horizon steps `first`..`last` (1-based, inclusive)."""

    first: int
    last: int
    model: Scores
    seasonal_naive: Scores
    random_walk: Scores
    coverage: dict[str, float]  # interval level ("80") -> share of actuals inside the band

    @property
    def label(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    def by_forecaster(self) -> dict[str, Scores]:
        return {"model": self.model, "seasonal_naive": self.seasonal_naive, "random_walk": self.random_walk}


@dataclass(frozen=True)
class ScoreTable:
    per_step: list[StepScores]
    overall: StepScores
    windows: int  # origins over all series
    note: str | None  # why MASE is null, or over which origins it is taken


@dataclass(frozen=True)
class _Stacked:
    """Every series' origins stacked into rows: actuals, point forecasts, bands and MASE scales."""

    targets: np.ndarray  # [K, H]
    forecasts: dict[str, np.ndarray]  # forecaster -> [K, H]
    bands: dict[str, tuple[np.ndarray, np.ndarray]]  # level -> ([K, H], [K, H])
    scales: np.ndarray  # [K], NaN where undefined
    note: str | None


def interval_levels(quantiles: tuple[float, ...]) -> list[float]:
    """The reported levels (80%, 95%) that the model's quantiles carry."""
    available = available_levels(quantiles)
    return [level for level in INTERVAL_LEVELS if level in available]


def level_key(level: float) -> str:
    return f"{level:g}"


def _stack(forecasts: Sequence[OriginForecasts], quantiles: tuple[float, ...], season: int) -> _Stacked:
    horizon = forecasts[0].quantiles.shape[1]
    targets, model, seasonal, walk, scales, reasons = [], [], [], [], [], []
    for item in forecasts:
        values = item.series.values.astype(np.float64)
        targets.append(values[item.origins[:, None] + np.arange(horizon)[None, :]])  # [K, 1] + [1, H]
        model.append(interpolate_quantile(item.quantiles, quantiles, MEDIAN))
        seasonal.append(seasonal_naive_forecast(values, item.origins, horizon, season))
        walk.append(seasonal_naive_forecast(values, item.origins, horizon, 1))
        for origin in item.origins:
            scale = naive_scale(values[:origin], season)
            scales.append(np.nan if scale.value is None else scale.value)
            if scale.reason is not None:
                reasons.append(f"series {item.series.id!r} at origin {origin}: {scale.reason}")
    stacked_quantiles = np.concatenate([item.quantiles for item in forecasts]).astype(np.float64)
    bands = {
        level_key(level): tuple(
            interpolate_quantile(stacked_quantiles, quantiles, bound) for bound in interval_quantiles(level)
        )
        for level in interval_levels(quantiles)
    }
    return _Stacked(
        targets=np.concatenate(targets),
        forecasts={
            "model": np.concatenate(model).astype(np.float64),
            "seasonal_naive": np.concatenate(seasonal),
            "random_walk": np.concatenate(walk),
        },
        bands={key: (lower, upper) for key, (lower, upper) in bands.items()},
        scales=np.array(scales, dtype=np.float64),
        note=_scale_note(reasons, len(scales), season),
    )


def _scale_note(reasons: list[str], rows: int, season: int) -> str | None:
    if not reasons:
        return None
    scope = "every origin" if len(reasons) == rows else f"{len(reasons)} of {rows} origins (left out of MASE)"
    return f"no lag-{season} naive scale for {scope}, e.g. {reasons[0]}"


def _scores(stacked: _Stacked, steps: slice, first: int, last: int) -> StepScores:
    targets = stacked.targets[:, steps]

    def scores(forecast: np.ndarray) -> Scores:
        errors = forecast[:, steps] - targets
        return Scores(mae=mae(errors), rmse=rmse(errors), mase=scaled_mae(errors, stacked.scales))

    model, seasonal, walk = (scores(stacked.forecasts[name]) for name in FORECASTERS)
    coverage = {
        level: interval_coverage(targets, lower[:, steps], upper[:, steps])
        for level, (lower, upper) in stacked.bands.items()
    }
    return StepScores(first, last, model, seasonal, walk, coverage)


def score_table(
    forecasts: Sequence[OriginForecasts], quantiles: tuple[float, ...], season: int
) -> ScoreTable:
    """Per-step and overall scores of the model's median forecasts and both naive baselines."""
    stacked = _stack(forecasts, quantiles, season)
    horizon = stacked.targets.shape[1]
    per_step = [_scores(stacked, slice(h, h + 1), h + 1, h + 1) for h in range(horizon)]
    return ScoreTable(
        per_step=per_step,
        overall=_scores(stacked, slice(0, horizon), 1, horizon),
        windows=len(stacked.targets),
        note=stacked.note,
    )


def _merge(scores: Sequence[Scores]) -> Scores:
    """Exact for steps scored over the same origins: MAE and MASE average, RMSE averages its squares."""
    mases = [s.mase for s in scores]
    return Scores(
        mae=float(np.mean([s.mae for s in scores])),
        rmse=float(np.sqrt(np.mean([s.rmse**2 for s in scores]))),
        mase=None if any(m is None for m in mases) else float(np.mean([m for m in mases if m is not None])),
    )


def merge_steps(steps: Sequence[StepScores]) -> StepScores:
    """The scores of consecutive horizon steps taken together (a bucket of a long horizon)."""
    return StepScores(
        first=steps[0].first,
        last=steps[-1].last,
        model=_merge([s.model for s in steps]),
        seasonal_naive=_merge([s.seasonal_naive for s in steps]),
        random_walk=_merge([s.random_walk for s in steps]),
        coverage={level: float(np.mean([s.coverage[level] for s in steps])) for level in steps[0].coverage},
    )


def step_buckets(horizon: int, single_steps: int = 3) -> list[tuple[int, int]]:
    """Steps 1..3 one by one, then buckets that double: 4-6, 7-12, 13-24, ... (1-based, inclusive)."""
    buckets = [(step, step) for step in range(1, min(horizon, single_steps) + 1)]
    last = single_steps
    while last < horizon:
        end = min(2 * last, horizon)
        buckets.append((last + 1, end))
        last = end
    return buckets


def summarise(table: ScoreTable, max_rows: int = 12) -> list[StepScores]:
    """Every step for a short horizon; the buckets of `step_buckets` for a long one."""
    if len(table.per_step) <= max_rows:
        return list(table.per_step)
    return [
        merge_steps(table.per_step[first - 1 : last]) for first, last in step_buckets(len(table.per_step))
    ]
