"""The self-learned forecaster of the detector: ridge autoregression on scaled first differences.

Why a linear model and not a small recurrent network: the detector's quality is decided by what happens after
the forecaster (rank likelihoods, gates, run suppression: `shared/notes/anomaly-findings.md` measured a
persistence forecast level with a GRU under the same post-processing), while a fleet of self-learning streams
needs a fit that costs milliseconds, is exactly reproducible, and whose weights are a few numbers in the
stream's JSON state. A closed-form ridge solve on at most `memory` readings gives all three.

Inputs for the difference to the next reading: the last `LAGS` differences and, per season (a day, a week), the
difference of the reading one period earlier *in time* (the reading nearest that instant, or the one after it
when the instant fell in a gap: `spanning_index`, so dropped rows and jittered stamps neither shift nor void the
season); each divided by a robust scale of the differences and
clipped at `CLIP` scales, so one spike in the inputs cannot throw the forecast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from app.anomaly._validation import state_field

LAGS = 8
CLIP = 6.0
RIDGE = 1.0  # penalty on the weights of standardised inputs; small against the hundreds of rows fitted on


def robust_scale(diffs: np.ndarray) -> float:
    """1.4826 * MAD of the differences, floored at a tenth of their standard deviation and a tiny absolute."""
    if diffs.size == 0:
        return 1.0
    mad = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs))))
    return max(mad, 0.1 * float(diffs.std()), 1e-9)


def period_index(times: np.ndarray, at: np.ndarray, period: float, slack: float) -> np.ndarray:
    """Per instant in `at`, the index in increasing `times` of the reading nearest to `at - period` if within
    `slack` of it (-1 where there is none, e.g. it fell in a gap): [T], [A] -> [A]. `Detector` looks up one
    instant the same way (`Detector._index_before`)."""
    target = at - period
    index = np.searchsorted(times, target + slack, side="right") - 1  # [A]
    earlier = times[np.maximum(index - 1, 0)]  # [A]
    nearer = (index > 0) & (target - earlier < times[np.maximum(index, 0)] - target)  # [A]
    index = np.where(nearer, index - 1, index)
    found = times[np.maximum(index, 0)]  # [A]
    return np.where((index >= 0) & (found >= target - slack), index, -1)


def spanning_index(times: np.ndarray, at: np.ndarray, period: float, slack: float) -> np.ndarray:
    """`period_index`, and where that finds no reading (the instant fell in a gap), the first reading after the
    instant: its difference spans the gap, so a dropped reading does not void a seasonal input (-1 where no
    reading follows one before the instant): [T], [A] -> [A]. `Detector._diff_before` does the same."""
    nearest = period_index(times, at, period, slack)  # [A]
    after = np.searchsorted(times, at - period, side="right")  # [A]
    return np.where((nearest < 0) & (after >= 1) & (after < len(times)), after, nearest)


class DifferenceAR:
    """Weights [LAGS + one per period + intercept] and the scale of the differences (see module docstring)."""

    def __init__(
        self, scale: float = 1.0, periods: Sequence[float] = (), weights: Sequence[float] = ()
    ) -> None:
        self.scale = scale
        self.periods = tuple(float(period) for period in periods)
        self.weights = [float(w) for w in weights] or [0.0] * self.width

    @property
    def width(self) -> int:
        return LAGS + len(self.periods) + 1

    def predict(self, lags: Sequence[float], seasonal: Sequence[float]) -> float:
        """The next difference in the series' units, from the newest-first scaled `lags` (zeros past the start)
        and one scaled seasonal difference per period (0 where unknown)."""
        row = [*lags, *seasonal, 1.0]
        return self.scale * math.fsum(w * x for w, x in zip(self.weights, row, strict=True))

    def clip(self, diff: float) -> float:
        """A difference as the scaled, clipped input the model reads."""
        return max(-CLIP, min(CLIP, diff / self.scale))

    @classmethod
    def fit(
        cls, values: Sequence[float], times: Sequence[float], periods: Sequence[float], slack: float
    ) -> Self:
        """Least squares with a ridge penalty over every reading of `values` at increasing `times` (seconds);
        a period enters only when the readings span it twice over."""
        v, t = np.asarray(values, dtype=np.float64), np.asarray(times, dtype=np.float64)  # [N], [N]
        raw = np.diff(v)  # [N - 1]
        span = float(t[-1] - t[0]) if len(t) else 0.0
        model = cls(robust_scale(raw), [p for p in periods if 0 < 2 * p <= span])
        if len(raw) <= model.width:
            return model
        diffs = np.concatenate(
            ([0.0], np.clip(raw / model.scale, -CLIP, CLIP))
        )  # [N], diffs[i] = x_i - x_{i-1}
        x, y = model._design(diffs, t, slack), diffs[1:]  # [N - 1, width], [N - 1]
        penalty = RIDGE * np.eye(model.width)
        penalty[-1, -1] = 0.0  # the intercept is not shrunk
        model.weights = np.linalg.solve(x.T @ x + penalty, x.T @ y).tolist()
        return model

    def _design(self, diffs: np.ndarray, times: np.ndarray, slack: float) -> np.ndarray:
        """The inputs of every target i = 1 .. N - 1 at once: [N], [N] -> [N - 1, width]."""
        targets = np.arange(1, len(diffs))  # [N - 1]
        padded = np.concatenate((np.zeros(LAGS), diffs))  # [LAGS + N]
        columns = [padded[LAGS + targets - 1 - lag] for lag in range(LAGS)]
        for period in self.periods:
            index = spanning_index(times, times[targets], period, slack)
            columns.append(np.where((index >= 1) & (index < targets), diffs[np.maximum(index, 0)], 0.0))
        columns.append(np.ones(len(targets)))
        return np.stack(columns, axis=1)

    def to_state(self) -> dict[str, Any]:
        return {"scale": self.scale, "periods": list(self.periods), "weights": self.weights}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        owner = cls.__name__
        model = cls(
            float(state_field(state, "scale", owner)),
            state_field(state, "periods", owner),
            state_field(state, "weights", owner),
        )
        if len(model.weights) != model.width:
            raise ValueError(f"state['weights'] has {len(model.weights)} numbers; expected {model.width}")
        return model
