"""Nonconformity of an observation with respect to its quantile forecast.

The score of a point is its signed residual `r = y - median`, measured in units of the forecast's own spread on
the side the observation fell: above the median it is divided by `q_hi - median`, below by `median - q_lo`, with
`q_lo`/`q_hi` the quantiles bounding the central interval (default 80 %: q0.1 and q0.9). A point exactly on the
upper edge of the 80 % interval therefore has magnitude 1 whatever the series' scale, and an asymmetric forecast
(wide upper side, narrow lower side) is judged asymmetrically. The magnitudes are not probabilities yet; a
`ConformalCalibrator` turns them into calibrated scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from app.anomaly._validation import (
    FloatArray,
    check_kind,
    float_array,
    in_open_interval,
    real_number,
    require_finite,
    short,
    state_field,
)

UP = "up"
DOWN = "down"
_LEVEL_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ResidualScores:
    """Per-point nonconformity. Rows without a forecast (all-NaN quantile row) hold NaN / None."""

    signed: FloatArray  # [N] r / spread of its side; > 0 above the median
    magnitude: FloatArray  # [N] |signed|
    direction: npt.NDArray[np.object_]  # [N] "up" | "down" | None (no forecast)
    expected: FloatArray  # [N] forecast median
    lower: FloatArray  # [N] lower edge of the central interval
    upper: FloatArray  # [N] upper edge of the central interval


class SpreadResidualScorer:
    """Signed residual divided by the forecast spread on the residual's side.

    Args:
        central_level: coverage of the central interval whose edges define the spread (0.8 -> q0.1 / q0.9).
            Quantiles that are not among the forecast's levels are interpolated linearly between neighbours.
        relative_floor: the spread is floored at `relative_floor * (|median| + (q_hi - q_lo))` so that a
            degenerate forecast (zero spread on a side) yields a large but finite magnitude, never a division
            by ~0.
        absolute_floor: lower bound of that floor, for series that sit at 0 with zero spread.
    """

    def __init__(
        self, central_level: float = 0.8, relative_floor: float = 1e-6, absolute_floor: float = 1e-12
    ) -> None:
        self.central_level = in_open_interval(
            "central_level", central_level, 0.0, 1.0, "Use e.g. 0.8 for the q0.1-q0.9 interval."
        )
        self.relative_floor = _non_negative("relative_floor", relative_floor)
        self.absolute_floor = _non_negative("absolute_floor", absolute_floor)
        if self.absolute_floor == 0.0:
            raise ValueError(
                "absolute_floor must be > 0; got 0.0. Pass a tiny positive number such as 1e-12."
            )

    @property
    def levels(self) -> tuple[float, float, float]:
        """(lower, median, upper) quantile levels the scorer reads."""
        half = self.central_level / 2.0
        return 0.5 - half, 0.5, 0.5 + half

    def score(self, values: Any, quantiles: Any, quantile_levels: Any) -> ResidualScores:
        """Score `values` [N] against `quantiles` [N, Q] forecast at `quantile_levels` [Q].

        A quantile row that is entirely NaN means "no forecast for this point" and yields NaN / None.
        Crossing quantiles within a row are sorted (monotone rearrangement) before use.
        """
        levels = validate_levels(quantile_levels)
        self._check_levels_cover(levels)
        vals, quants = validate_values_and_quantiles(values, quantiles, levels.size)
        return self._score_core(vals, quants, levels)

    def _check_levels_cover(self, levels: FloatArray) -> None:
        low, _, high = self.levels
        if low < levels[0] - _LEVEL_TOLERANCE or high > levels[-1] + _LEVEL_TOLERANCE:
            raise ValueError(
                f"quantile_levels {short(levels)} do not cover the central interval [{low:g}, {high:g}] of "
                f"central_level={self.central_level:g}. Forecast quantiles at {low:g} and {high:g} (or wider), "
                f"or lower central_level to at most {max(0.0, 2 * min(0.5 - levels[0], levels[-1] - 0.5)):g}."
            )

    def _score_core(self, values: FloatArray, quantiles: FloatArray, levels: FloatArray) -> ResidualScores:
        expected, lower, upper = self._interval_core(quantiles, levels)  # each [N]
        signed = self._signed_core(values, expected, lower, upper)  # [N]
        direction = np.full(values.shape, None, dtype=object)  # [N]
        available = ~np.isnan(signed)
        direction[available & (signed >= 0)] = UP
        direction[available & (signed < 0)] = DOWN
        return ResidualScores(
            signed=signed,
            magnitude=np.abs(signed),
            direction=direction,
            expected=expected,
            lower=lower,
            upper=upper,
        )

    def _interval_core(
        self, quantiles: FloatArray, levels: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        ordered = np.sort(quantiles, axis=1)  # [N, Q]; NaN rows stay NaN
        low, mid, high = self.levels
        return (
            _quantile_at(ordered, levels, mid),
            _quantile_at(ordered, levels, low),
            _quantile_at(ordered, levels, high),
        )

    def _signed_core(
        self, values: FloatArray, expected: FloatArray, lower: FloatArray, upper: FloatArray
    ) -> FloatArray:
        residual = values - expected  # [N]
        floor = np.maximum(self.relative_floor * (np.abs(expected) + (upper - lower)), self.absolute_floor)
        spread = np.where(residual >= 0, upper - expected, expected - lower)  # [N] side-specific spread
        return residual / np.maximum(spread, floor)

    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable configuration."""
        return {
            "kind": "SpreadResidualScorer",
            "central_level": self.central_level,
            "relative_floor": self.relative_floor,
            "absolute_floor": self.absolute_floor,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Inverse of `to_state`."""
        check_kind(state, "SpreadResidualScorer", cls.__name__)
        return cls(
            central_level=state_field(state, "central_level", cls.__name__),
            relative_floor=state_field(state, "relative_floor", cls.__name__),
            absolute_floor=state_field(state, "absolute_floor", cls.__name__),
        )


def validate_levels(quantile_levels: Any) -> FloatArray:
    """`quantile_levels` as a strictly increasing [Q] array inside (0, 1)."""
    levels = float_array("quantile_levels", quantile_levels, ndim=1)
    if levels.size < 2:
        raise ValueError(
            f"quantile_levels must hold at least 2 levels; got {short(levels)}. "
            "Forecast at least the central interval, e.g. [0.1, 0.5, 0.9]."
        )
    require_finite("quantile_levels", levels, "Pass levels strictly between 0 and 1.")
    if levels[0] <= 0.0 or levels[-1] >= 1.0 or np.any(np.diff(levels) <= 0):
        raise ValueError(
            f"quantile_levels must be strictly increasing and inside (0, 1); got {short(levels)}. "
            "Sort the levels (and the quantile columns with them) and drop duplicates."
        )
    return levels


def validate_values_and_quantiles(
    values: Any, quantiles: Any, n_levels: int
) -> tuple[FloatArray, FloatArray]:
    """`values` [N] finite and `quantiles` [N, Q] whose rows are either all finite or all NaN."""
    vals = float_array("values", values, ndim=1)
    quants = float_array("quantiles", quantiles, ndim=2)
    if quants.shape != (vals.size, n_levels):
        raise ValueError(
            f"quantiles must have shape (len(values), len(quantile_levels)) = ({vals.size}, {n_levels}); "
            f"got {quants.shape}. Pass one row per value and one column per quantile level."
        )
    require_finite("values", vals, "Drop missing observations before scoring (or interpolate them).")
    nan_rows = np.asarray(np.isnan(quants).all(axis=1))  # [N] "no forecast"
    require_finite(
        "quantiles",
        quants,
        "A row may be entirely NaN (no forecast for that point); otherwise every quantile must be finite.",
        ignore=nan_rows[:, None],
    )
    return vals, quants


def _quantile_at(ordered: FloatArray, levels: FloatArray, level: float) -> FloatArray:
    """Column of `ordered` [N, Q] at `level`, linearly interpolated between the neighbouring levels."""
    exact = np.flatnonzero(np.abs(levels - level) <= _LEVEL_TOLERANCE)
    if exact.size:
        return ordered[:, exact[0]].copy()
    right = int(np.searchsorted(levels, level))  # levels[right - 1] < level < levels[right]
    weight = (level - levels[right - 1]) / (levels[right] - levels[right - 1])
    interpolated: FloatArray = (1.0 - weight) * ordered[:, right - 1] + weight * ordered[:, right]
    return interpolated


def _non_negative(name: str, value: Any) -> float:
    result = real_number(name, value)
    if result < 0:
        raise ValueError(f"{name} must be >= 0; got {result!r}. Pass a small non-negative number.")
    return result
