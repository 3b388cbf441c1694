"""Forecasts beyond the trained horizon, by feeding the model's own median forecasts back as inputs.

A model forecasts `H` (its trained horizon) steps at once. A request for more steps, up to `MAX_HORIZON_FACTOR`
times `H`, is answered in rounds: the median of the last `H` steps is appended to the window (and the calendar
inputs advanced by the model's frequency), and the model forecasts the next `H` steps from that window. The
answer says so (`horizon_marks`): `recursive`, `trained_horizon` and `recursive_from_step`, the first step whose
inputs include forecasts.

Intervals beyond `H`. The model's quantiles of a later round are conditional on the fed-back medians being
right, so they would restart narrow at each round. Each round's distance of every quantile from its median is
therefore combined, in quadrature, with the distance the same quantile had reached at the last step of the
previous round: the error already made is treated as independent of the new round's own error and carried on
(an approximation, not a calibrated interval; intervals of recursive steps are wider than the trained ones and
never narrower than the last trained step's).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from app.errors import InvalidInputError
from app.forecasting.forecaster import Forecaster
from app.serving.inference import SeriesInput, forecast_timestamps

MAX_HORIZON_FACTOR: Final = 10


def horizon_limit(forecaster: Forecaster) -> int:
    """The most steps a request may ask of this model: `MAX_HORIZON_FACTOR` times its trained horizon."""
    return forecaster.spec.horizon * MAX_HORIZON_FACTOR


def check_horizon(forecaster: Forecaster, horizon: int) -> None:
    limit, trained = horizon_limit(forecaster), forecaster.spec.horizon
    if horizon > limit:
        raise InvalidInputError(
            f"horizon {horizon} exceeds the limit of {limit} for this model: it was trained to forecast "
            f"{trained} steps at once and forecasts up to {MAX_HORIZON_FACTOR}x that ({limit}) by feeding its "
            "forecasts back; ask for fewer steps or train a model with a longer --horizon",
            fields={"field": "horizon", "value": horizon, "maximum": limit, "trained_horizon": trained},
        )


def horizon_marks(forecaster: Forecaster, horizon: int) -> dict[str, Any]:
    """The answer's `trained_horizon`, `recursive` and `recursive_from_step` (1-based; null when not recursive)."""
    trained = forecaster.spec.horizon
    recursive = horizon > trained
    return {
        "trained_horizon": trained,
        "recursive": recursive,
        "recursive_from_step": trained + 1 if recursive else None,
    }


def extend_horizon(
    forecaster: Forecaster, series: list[SeriesInput], quantiles: np.ndarray, horizon: int
) -> np.ndarray:
    """Quantiles [n, H, Q] from the series' last windows, extended to [n, horizon, Q] when horizon > H."""
    spec = forecaster.spec
    if horizon <= spec.horizon:
        return quantiles
    window, median = spec.window, spec.median_index
    values = np.stack([item.values[-window:] for item in series]).astype(np.float32)  # [n, L]
    stamps = _input_stamps(forecaster, series, horizon)  # [n, L + horizon] or None
    chunks = [quantiles]
    produced = spec.horizon
    while produced < horizon:
        values = np.concatenate([values, chunks[-1][:, :, median]], axis=1)[:, -window:]  # [n, L]
        calendar = None
        if stamps is not None:
            calendar = forecaster.calendar(stamps[:, produced : produced + window])  # [n, L, C]
        raw = forecaster.predict(values, calendar)  # [n, H, Q]
        chunks.append(_carry_spread(raw, chunks[-1][:, -1, :], spec.quantiles, median))
        produced += spec.horizon
    return np.concatenate(chunks, axis=1)[:, :horizon]  # [n, horizon, Q]


def _input_stamps(forecaster: Forecaster, series: list[SeriesInput], horizon: int) -> np.ndarray | None:
    """Each series' last window of timestamps followed by its `horizon` future ones; None without a calendar."""
    if not forecaster.uses_calendar:
        return None
    spec = forecaster.spec
    rows = []
    for position, item in enumerate(series):
        assert item.timestamps is not None  # `check_inputs` requires them for calendar models
        future = forecast_timestamps(item, position, spec.frequency, horizon)
        rows.append(np.concatenate([item.timestamps[-spec.window :], future]))
    return np.stack(rows)


def _carry_spread(
    raw: np.ndarray, previous_last: np.ndarray, quantiles: tuple[float, ...], median: int
) -> np.ndarray:
    """A round's quantiles [n, H, Q] widened by the spread reached at the previous round's last step [n, Q]."""
    side = np.sign(np.asarray(quantiles) - quantiles[median]).astype(raw.dtype)  # [Q]: -1 below, +1 above
    centre = raw[:, :, median : median + 1]  # [n, H, 1]
    carried = np.abs(previous_last - previous_last[:, median : median + 1])[:, None, :]  # [n, 1, Q]
    spread = np.sqrt(np.square(raw - centre) + np.square(carried))  # [n, H, Q]
    widened: np.ndarray = centre + side * spread
    return widened
