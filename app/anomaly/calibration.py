"""Calibrated anomaly scores: nonconformity magnitude -> conformal p-value -> score = 1 - p.

A `ConformalCalibrator` is fitted on held-out magnitudes (residuals of the trained model on validation data that
is assumed normal, typically 1000-5000 points). For a new magnitude `a` the p-value is the probability that a
normal point is at least as extreme:

* body (a <= u): the split-conformal p-value `(1 + #{cal >= a}) / (n + 1)`. It is valid (never anti-conservative)
  when the new point is exchangeable with the calibration points, with no model of the distribution at all.
* tail (a > u, u = the `tail_quantile` empirical quantile, default 0.9): `p = (n_u / (n + 1)) * S(a - u)` with
  `n_u = #{cal > u}` and `S` the survival function of a generalised Pareto distribution (GPD) fitted by maximum
  likelihood to the `n_u` excesses over `u` ("peaks over threshold").

Why a tail model: the conformal p-value cannot go below `1 / (n + 1)`. With 2000 calibration points every
magnitude beyond the largest one gets p = 5e-4, so a target false-alarm rate of 1e-4 (sensitivity 0) could never
flag anything, 1e-3 would be decided by the two largest calibration points alone, and a 5-sigma spike and a
50-sigma spike would get the same score. By the Pickands-Balkema-de Haan theorem, excesses over a high threshold
are approximately GPD for essentially every continuous distribution (exponential-like tails give shape 0,
Student-t a positive shape), so the fitted tail extrapolates p-values smoothly below 1/(n+1).

Choices (measured on simulated Gaussian, Student-t(3) and Laplace residuals, n = 2000, 150 draws each):

* `tail_quantile` 0.9 rather than 0.95: twice as many excesses (200) reduce the variance of the fitted tail; the
  GPD approximation is already good there. When fewer than `min_tail_points` (50) points lie above it, the
  threshold is lowered to leave exactly 50 points above, down to the 0.75 quantile; below that (n < 200) no
  tail is fitted and the conformal floor 1/(n+1) applies (alphas below it never flag).
* shape constrained to [-0.1, 1]: Gaussian-like tails fit a clearly negative shape at finite thresholds (the GPD
  limit is approached very slowly), and extrapolating such a bounded tail underestimates extreme quantiles,
  doubling the false-alarm rate at alpha = 1e-4. The -0.1 floor makes the Gaussian case about right (median
  0.85x the target) and errs on the side of fewer false alarms for bounded tails. Shapes above 1 (no mean)
  are not plausible for forecast residuals.
* The remaining error is sampling noise of the calibration set itself: at alpha = 1e-3, 80-90 % of calibration
  draws of 2000 points give a realised false-alarm rate within [0.5, 2] x alpha (the exact conformal p-value has
  the same spread: its rate is Beta-distributed with only ~2 calibration points beyond the threshold).

p-values are non-increasing in `a`; the tail starts at `n_u / (n + 1)`, below every body p-value.

`CalibrationSet` holds one calibrator per series id plus a global fallback (per-series calibration is simply one
calibrator per series).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from app.anomaly._validation import (
    FloatArray,
    check_kind,
    in_open_interval,
    positive_int,
    require_finite,
    short,
    state_field,
)
from app.anomaly.residuals import SpreadResidualScorer

MIN_CALIBRATION_POINTS = 10
_SHAPE_BOUNDS = (-0.1, 1.0)
_LOWEST_TAIL_QUANTILE = 0.75
_EXPONENTIAL_SHAPE = 1e-9  # |shape| below this is treated as exactly exponential


@dataclass(frozen=True)
class GeneralizedParetoTail:
    """Peaks-over-threshold model: P(A > a) = fraction * S(a - threshold) for a > threshold."""

    threshold: float  # u
    fraction: float  # n_u / (n + 1)
    shape: float  # xi; 0 = exponential tail, > 0 heavier, < 0 bounded
    scale: float  # sigma > 0

    def survival(self, excess: FloatArray) -> FloatArray:
        """GPD survival function S(y) for excesses y >= 0 [any shape]."""
        if abs(self.shape) < _EXPONENTIAL_SHAPE:
            return np.exp(-excess / self.scale)
        base = 1.0 + self.shape * excess / self.scale
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            surv = np.power(np.maximum(base, 0.0), -1.0 / self.shape)
        return np.where(base > 0.0, surv, 0.0)

    def excess_for_survival(self, survival: float) -> float:
        """Inverse of `survival` for a survival probability in (0, 1]."""
        if abs(self.shape) < _EXPONENTIAL_SHAPE:
            return float(-self.scale * np.log(survival))
        return float(self.scale / self.shape * (survival ** (-self.shape) - 1.0))

    def to_state(self) -> dict[str, float]:
        return {
            "threshold": self.threshold,
            "fraction": self.fraction,
            "shape": self.shape,
            "scale": self.scale,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        return cls(**{key: float(state_field(state, key, cls.__name__)) for key in cls.__dataclass_fields__})


class ConformalCalibrator:
    """Split-conformal p-values for nonconformity magnitudes, with a GPD tail (see module docstring).

    Args:
        tail_quantile: empirical quantile of the calibration sample where the tail model takes over (lowered
            automatically, down to 0.75, when fewer than `min_tail_points` points lie above it).
        min_tail_points: fewest calibration points above that quantile for the tail to be fitted.
        max_points: the stored sample is capped at this size by keeping evenly spaced order statistics
            (deterministic, preserves the empirical quantiles to within 1/max_points).
    """

    def __init__(self, tail_quantile: float = 0.9, min_tail_points: int = 50, max_points: int = 5000) -> None:
        self.tail_quantile = in_open_interval(
            "tail_quantile", tail_quantile, 0.5, 1.0, "Use a high quantile such as 0.9."
        )
        self.min_tail_points = positive_int("min_tail_points", min_tail_points, minimum=5)
        self.max_points = positive_int("max_points", max_points, minimum=MIN_CALIBRATION_POINTS)
        self._sample: FloatArray | None = None  # [n] sorted ascending
        self._tail: GeneralizedParetoTail | None = None

    # ---------------------------------------------------------------- fitting
    def fit(self, magnitudes: Any) -> Self:
        """Fit on held-out nonconformity magnitudes (finite, >= 0, at least 10; 1000+ recommended)."""
        sample = validate_magnitudes("magnitudes", magnitudes, allow_nan=False).ravel()
        if sample.size < MIN_CALIBRATION_POINTS:
            raise ValueError(
                f"magnitudes must hold at least {MIN_CALIBRATION_POINTS} calibration points; got {sample.size}. "
                "Calibrate on a longer validation window (1000+ points give p-values down to 1e-3)."
            )
        self._fit_core(sample)
        return self

    def _fit_core(self, sample: FloatArray) -> None:
        ordered = np.sort(sample)  # [n]
        if ordered.size > self.max_points:
            keep = np.round(np.linspace(0, ordered.size - 1, self.max_points)).astype(np.int64)
            ordered = ordered[keep]  # [max_points] evenly spaced order statistics
        self._sample = ordered
        self._tail = self._fit_tail_core(ordered)

    def _fit_tail_core(self, ordered: FloatArray) -> GeneralizedParetoTail | None:
        level = min(self.tail_quantile, 1.0 - self.min_tail_points / ordered.size)
        if level < _LOWEST_TAIL_QUANTILE:
            return None
        threshold = float(np.quantile(ordered, level))
        excess = ordered[ordered > threshold] - threshold  # [n_u]
        if excess.size < self.min_tail_points:
            return None
        shape, scale = fit_generalized_pareto(excess)
        fraction = excess.size / (ordered.size + 1.0)
        return GeneralizedParetoTail(threshold=threshold, fraction=fraction, shape=shape, scale=scale)

    # ---------------------------------------------------------------- scoring
    @property
    def is_fitted(self) -> bool:
        return self._sample is not None

    @property
    def n_calibration(self) -> int:
        """Number of stored calibration points."""
        return int(self._require_sample().size)

    @property
    def tail(self) -> GeneralizedParetoTail | None:
        """The fitted tail, or None when too few points lay above the tail quantile."""
        self._require_sample()
        return self._tail

    @property
    def sample(self) -> FloatArray:
        """A copy of the sorted stored calibration sample [n]."""
        return self._require_sample().copy()

    def p_value(self, magnitudes: Any) -> FloatArray:
        """Conformal p-value of each magnitude (same shape as the input; NaN stays NaN, +inf gives 0)."""
        self._require_sample()
        return self._p_value_core(validate_magnitudes("magnitudes", magnitudes, allow_nan=True))

    def score(self, magnitudes: Any) -> FloatArray:
        """Calibrated anomaly score `1 - p_value` in [0, 1] (NaN stays NaN)."""
        return 1.0 - self.p_value(magnitudes)

    def _p_value_core(self, magnitudes: FloatArray) -> FloatArray:
        sample = self._require_sample()
        n = sample.size
        at_least = n - np.searchsorted(sample, magnitudes, side="left")  # #{cal >= a}
        p = (1.0 + at_least) / (n + 1.0)
        if self._tail is not None:
            in_tail = magnitudes > self._tail.threshold
            excess = np.where(in_tail, magnitudes - self._tail.threshold, 0.0)
            p = np.where(in_tail, self._tail.fraction * self._tail.survival(excess), p)
        return np.where(np.isnan(magnitudes), np.nan, p)

    def threshold(self, alpha: float) -> float:
        """Smallest magnitude whose p-value is <= `alpha` (inf if no magnitude reaches it)."""
        alpha = in_open_interval("alpha", alpha, 0.0, 1.0, "Use a false-alarm rate such as 0.003.")
        sample = self._require_sample()
        tail = self._tail
        if tail is not None and alpha < tail.fraction:
            return tail.threshold + tail.excess_for_survival(alpha / tail.fraction)
        allowed = int(np.floor(alpha * (sample.size + 1) - 1.0 + 1e-9))  # most calibration points >= a
        if allowed < 0:
            return float("inf")
        if allowed >= sample.size:
            return 0.0
        candidate = float(np.nextafter(sample[sample.size - allowed - 1], np.inf))
        return min(candidate, float(np.nextafter(tail.threshold, np.inf))) if tail is not None else candidate

    def _require_sample(self) -> FloatArray:
        if self._sample is None:
            raise ValueError(
                "ConformalCalibrator is not fitted (no calibration sample). "
                "Call fit(magnitudes) on held-out residual magnitudes first, or restore it with from_state()."
            )
        return self._sample

    # ---------------------------------------------------------------- state
    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable state (configuration, sorted sample, tail parameters)."""
        sample = self._require_sample()
        return {
            "kind": "ConformalCalibrator",
            "tail_quantile": self.tail_quantile,
            "min_tail_points": self.min_tail_points,
            "max_points": self.max_points,
            "sample": [float(x) for x in sample],
            "tail": None if self._tail is None else self._tail.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Restore exactly (no refitting): identical p-values afterwards."""
        check_kind(state, "ConformalCalibrator", cls.__name__)
        calibrator = cls(
            tail_quantile=state_field(state, "tail_quantile", cls.__name__),
            min_tail_points=state_field(state, "min_tail_points", cls.__name__),
            max_points=state_field(state, "max_points", cls.__name__),
        )
        sample = validate_magnitudes("state['sample']", state_field(state, "sample", cls.__name__), False)
        if sample.ndim != 1 or sample.size < 1 or np.any(np.diff(sample) < 0):
            raise ValueError(
                f"state['sample'] must be a non-empty ascending list; got {short(sample)}. "
                "Pass the state produced by ConformalCalibrator.to_state()."
            )
        tail_state = state_field(state, "tail", cls.__name__)
        calibrator._sample = sample
        calibrator._tail = None if tail_state is None else GeneralizedParetoTail.from_state(tail_state)
        return calibrator


class CalibrationSet:
    """Calibrators per series id, with a global calibrator for series that have none of their own."""

    def __init__(
        self,
        global_calibrator: ConformalCalibrator,
        per_series: Mapping[str, ConformalCalibrator] | None = None,
    ) -> None:
        self.global_calibrator = _require_fitted("global_calibrator", global_calibrator)
        self._per_series: dict[str, ConformalCalibrator] = {}
        for series_id, calibrator in (per_series or {}).items():
            self.add(series_id, calibrator)

    def add(self, series_id: str, calibrator: ConformalCalibrator) -> None:
        """Register (or replace) the calibrator of one series."""
        if not isinstance(series_id, str) or not series_id:
            raise ValueError(
                f"series_id must be a non-empty string; got {short(series_id)}. Pass the series id."
            )
        self._per_series[series_id] = _require_fitted(f"calibrator for {series_id!r}", calibrator)

    def for_series(self, series_id: str | None) -> ConformalCalibrator:
        """The series' own calibrator, or the global one (also for `series_id=None`)."""
        if series_id is None:
            return self.global_calibrator
        return self._per_series.get(series_id, self.global_calibrator)

    @property
    def series_ids(self) -> list[str]:
        return sorted(self._per_series)

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "CalibrationSet",
            "global": self.global_calibrator.to_state(),
            "per_series": {key: cal.to_state() for key, cal in sorted(self._per_series.items())},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "CalibrationSet", cls.__name__)
        per_series = state_field(state, "per_series", cls.__name__)
        return cls(
            ConformalCalibrator.from_state(state_field(state, "global", cls.__name__)),
            {key: ConformalCalibrator.from_state(value) for key, value in per_series.items()},
        )


def fit_generalized_pareto(excess: FloatArray) -> tuple[float, float]:
    """Maximum-likelihood (shape, scale) of a GPD for positive excesses [m].

    Uses Grimshaw's reduction: with theta = shape / scale the likelihood maximised over the shape is
    `-log(k / theta) - k - 1` (per point) with `k = mean(log1p(theta * y))`, a function of theta alone, which is
    maximised on a dense grid (deterministic, no optimiser). theta = 0 is the exponential limit. The shape is
    constrained to `_SHAPE_BOUNDS` (see the module docstring).
    """
    mean = float(excess.mean())
    largest = float(excess.max())
    negative = -np.linspace(0.002, 0.998, 400) / largest  # theta > -1 / max(y) keeps 1 + theta*y > 0
    positive = np.geomspace(1e-4, 1e3, 1200) / mean
    theta = np.concatenate([negative, positive])  # [T]
    k = np.log1p(theta[:, None] * excess[None, :]).mean(axis=1)  # [T] candidate shapes
    profile = -np.log(k / theta) - k - 1.0  # [T] profile log-likelihood per point
    valid = (k >= _SHAPE_BOUNDS[0]) & (k <= _SHAPE_BOUNDS[1]) & np.isfinite(profile)
    best_exponential = -np.log(mean) - 1.0
    if not valid.any() or profile[valid].max() <= best_exponential:
        return 0.0, mean
    index = int(np.flatnonzero(valid)[np.argmax(profile[valid])])
    shape = float(k[index])
    return shape, float(shape / theta[index])


def validate_magnitudes(name: str, magnitudes: Any, allow_nan: bool) -> FloatArray:
    """`magnitudes` as a float array (any shape) of values >= 0; NaN only when `allow_nan`."""
    try:
        arr = np.asarray(magnitudes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be numeric; got {short(magnitudes)}. Pass nonconformity magnitudes (floats >= 0)."
        ) from exc
    if not allow_nan:
        require_finite(name, arr, "Drop points without a forecast (NaN) before calibrating.")
    if np.any(arr < 0):
        raise ValueError(
            f"{name} must be >= 0 (they are absolute residuals); got minimum {float(np.nanmin(arr))!r}. "
            "Pass ResidualScores.magnitude, not the signed residual."
        )
    return arr


def _require_fitted(name: str, calibrator: Any) -> ConformalCalibrator:
    if not isinstance(calibrator, ConformalCalibrator) or not calibrator.is_fitted:
        raise ValueError(
            f"{name} must be a fitted ConformalCalibrator; got {short(calibrator)}. "
            "Call ConformalCalibrator().fit(magnitudes) first."
        )
    return calibrator


def calibrate_from_residuals(
    values: Any,
    quantiles: Any,
    quantile_levels: Any,
    scorer: SpreadResidualScorer | None = None,
    calibrator: ConformalCalibrator | None = None,
) -> ConformalCalibrator:
    """Fit a calibrator on held-out validation data: `values` [N], `quantiles` [N, Q] at `quantile_levels` [Q].

    Rows without a forecast (all-NaN quantiles) are skipped. `calibrator` supplies the configuration
    (tail quantile, caps); it is fitted in place and returned. Use the same `scorer` for detection.
    """
    if scorer is not None and not isinstance(scorer, SpreadResidualScorer):
        raise ValueError(f"scorer must be a SpreadResidualScorer or None; got {short(scorer)}.")
    if calibrator is not None and not isinstance(calibrator, ConformalCalibrator):
        raise ValueError(
            f"calibrator must be a ConformalCalibrator or None; got {short(calibrator)}. "
            "Pass e.g. ConformalCalibrator(tail_quantile=0.9)."
        )
    scores = (scorer or SpreadResidualScorer()).score(values, quantiles, quantile_levels)
    magnitudes = scores.magnitude[~np.isnan(scores.magnitude)]  # [N'] points that had a forecast
    return (calibrator or ConformalCalibrator()).fit(magnitudes)
