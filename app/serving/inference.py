"""From request series to model inputs and back: windows, calendar inputs, intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.errors import InvalidInputError
from app.forecasting.calendar import future_timestamps
from app.forecasting.forecaster import Forecaster
from app.forecasting.quantiles import interval_interpolation


@dataclass(frozen=True)
class SeriesInput:
    id: str
    values: np.ndarray  # [N] float64 (NaN: a missing reading; detection only)
    timestamps: np.ndarray | None  # [N] datetime64[ns]


@dataclass(frozen=True)
class Interval:
    level: float
    lower: np.ndarray  # [n, H]
    upper: np.ndarray  # [n, H]


@dataclass(frozen=True)
class ShapedForecasts:
    """Forecasts of n series, cut to the requested horizon H, as arrays over all series at once."""

    mean: np.ndarray  # [n, H]
    intervals: list[Interval]
    timestamps: list[np.ndarray | None]  # per series: [H] or None


def check_inputs(forecaster: Forecaster, series: list[SeriesInput], minimum_extra: int = 0) -> None:
    spec = forecaster.spec
    for position, item in enumerate(series):
        if len(item.values) < spec.window + minimum_extra:
            raise InvalidInputError(
                f"series {item.id!r} has {len(item.values)} values; this model reads windows of {spec.window}, "
                f"so send at least {spec.window + minimum_extra}",
                fields={"field": f"series.{position}.values", "minimum": spec.window + minimum_extra},
            )
        if forecaster.uses_calendar and item.timestamps is None:
            raise InvalidInputError(
                f"series {item.id!r} has no timestamps; this model uses calendar inputs "
                f"({', '.join(spec.calendar_features)}), so send one timestamp per value",
                fields={"field": f"series.{position}.timestamps"},
            )


def check_levels(forecaster: Forecaster, levels: list[float]) -> None:
    quantiles = forecaster.spec.quantiles
    widest = round((1.0 - 2.0 * min(quantiles)) * 100.0, 6)
    for level in levels:
        if level > widest:
            raise InvalidInputError(
                f"interval level {level:g} exceeds the widest this model provides ({widest:g}); "
                f"pick levels in (0, {widest:g}]",
                fields={"field": "levels", "value": level, "maximum": widest},
            )


def require_finite(series: list[SeriesInput], forecasts: np.ndarray, positions: bool = True) -> None:
    """Refuse forecasts [n, ...] that overflowed the network's single precision, instead of serving NaN/inf."""
    if np.isfinite(forecasts.sum(dtype=np.float64)):  # a float64 sum of float32 values cannot overflow
        return
    finite = np.isfinite(forecasts).reshape(len(series), -1).all(axis=1)  # [n, ...] -> [n]
    position = int(np.flatnonzero(~finite)[0])
    raise InvalidInputError(
        f"series {series[position].id!r}: the model produced non-finite forecasts; its values are too large in "
        "magnitude (or spread) for single-precision inference, so rescale them (e.g. to other units)",
        fields={"field": f"series.{position}.values"} if positions else {},
    )


def model_inputs(forecaster: Forecaster, series: list[SeriesInput]) -> tuple[np.ndarray, np.ndarray | None]:
    """The last window of every series: [n, L] (and calendar inputs [n, L, C])."""
    window = forecaster.spec.window
    windows = np.empty((len(series), window), dtype=np.float32)
    for row, item in zip(windows, series, strict=True):
        row[:] = item.values[-window:]
    if not forecaster.uses_calendar:
        return windows, None
    stamps = np.stack([item.timestamps[-window:] for item in series])  # type: ignore[index]
    return windows, forecaster.calendar(stamps)


def shape_forecasts(
    forecaster: Forecaster,
    series: list[SeriesInput],
    quantiles: np.ndarray,
    horizon: int,
    levels: list[float],
) -> ShapedForecasts:
    """Cut [n, H_model, Q] quantiles (or [n, horizon, Q] extended by `app.serving.recursion`) to `horizon` and
    express them as a median and central intervals."""
    spec = forecaster.spec
    cut = quantiles[:, :horizon]  # [n, H_model, Q] -> [n, H, Q]
    require_finite(series, cut)
    lower, upper, weight = interval_interpolation(spec.quantiles, tuple(levels))  # [2K] each
    bounds = cut[..., lower] * (1.0 - weight) + cut[..., upper] * weight  # [n, H, Q] -> [n, H, 2K]
    intervals = [
        Interval(level, bounds[..., 2 * k], bounds[..., 2 * k + 1]) for k, level in enumerate(levels)
    ]
    stamps = [
        forecast_timestamps(item, position, spec.frequency, horizon) for position, item in enumerate(series)
    ]
    return ShapedForecasts(cut[..., spec.median_index], intervals, stamps)


def forecast_timestamps(item: SeriesInput, position: int, frequency: str, horizon: int) -> np.ndarray | None:
    if item.timestamps is None:
        return None
    try:
        return future_timestamps(item.timestamps[-1], frequency, horizon)
    except ValueError as error:
        raise InvalidInputError(
            f"series {item.id!r}: {error}; send a series that ends earlier or ask for a shorter horizon",
            fields={"field": f"series.{position}.timestamps"},
        ) from None
