"""Streaming calibration that follows slow changes of the residual scale.

`AdaptiveCalibrator` wraps a fitted `ConformalCalibrator` (the *base*, fitted once on validation residuals).

What adapts: only the scale of the nonconformity magnitudes, not the shape of their distribution. The calibrator
keeps a running scale `s_t`, an exponentially weighted moving average (EWMA) of the magnitudes; at calibration
time the same statistic computed on the base sample gives `s_0`. A new magnitude `a` is scored as
`base.p_value(a / (s_t / s_0))`: if the forecast's spread has become 2x too narrow (residuals twice as large as
at calibration), magnitudes are halved before they are compared with the calibration sample, and the false-alarm
rate stays near its target.

How fast: the EWMA has a half-life of `half_life` points (default 250): after a sudden scale change, half of the
change is absorbed after ~250 normal points, 90 % after ~830. Slow drift (e.g. a 3x growth over 20 000 points)
is tracked with a lag of about `half_life / ln 2` points (~1-4 % scale error for that example), which raises
the false-alarm rate to about 1.2x alpha in simulation (alpha = 0.01; a static calibrator reaches ~18x alpha).

Why anomalies do not leak in:
1. Flagged points (score >= 1 - alpha) never update the scale.
2. Every update is clipped at the current flag threshold (in raw magnitude units), so a point that was not
   flagged by this calibrator but is passed with `flagged=False` by a caller can move the scale by at most a
   bounded amount. The calibration statistic `s_0` is computed the same way (mean of the base sample below the
   base threshold), so the ratio `s_t / s_0` is unbiased for a pure change of scale.
3. Burst guard: an EWMA of the flag indicator (half-life `burst_half_life`, default 50 points) estimates the
   recent flag rate. While it exceeds `burst_rate` (default min(0.5, max(0.05, 10 * alpha))), no point updates
   the scale, including the unflagged points inside an anomalous burst (e.g. a stretch of 5x noise, where about
   half of the points fall below the threshold but are still far larger than normal). Updates resume once the
   flag rate has decayed, a few burst half-lives after the burst ends. A persistent, abrupt change of scale is
   therefore *not* absorbed: it keeps flagging until the model is recalibrated, which is the intended behaviour
   for an anomaly detector (only slow drift is treated as normal).

The ratio `s_t / s_0` is kept within [`min_ratio`, `max_ratio`] (default [0.25, 20]) so that a stretch of
perfectly predicted points (e.g. a flat line) cannot shrink the scale to ~0 and make every later wiggle anomalous.

Each step is O(1) in the stream length (one binary search in the fixed-size calibration sample).
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np

from app.anomaly._validation import (
    FloatArray,
    check_kind,
    real_number,
    short,
    state_field,
)
from app.anomaly.calibration import ConformalCalibrator
from app.anomaly.sensitivity import DEFAULT_SENSITIVITY, score_threshold, sensitivity_to_alpha, validate_alpha


class AdaptiveCalibrator:
    """Base calibrator + running residual scale (see module docstring).

    Args:
        base: fitted `ConformalCalibrator`.
        alpha: target false-alarm rate; points with score >= 1 - alpha are flagged and excluded from updates.
        half_life: EWMA half-life of the running scale, in points.
        burst_half_life: EWMA half-life of the recent flag rate, in points.
        burst_rate: recent flag rate above which updates are suspended (None: min(0.5, max(0.05, 10 alpha))).
        min_ratio, max_ratio: bounds of running scale / calibration scale.
    """

    def __init__(
        self,
        base: ConformalCalibrator,
        alpha: float | None = None,
        half_life: float = 250.0,
        burst_half_life: float = 50.0,
        burst_rate: float | None = None,
        min_ratio: float = 0.25,
        max_ratio: float = 20.0,
    ) -> None:
        if not isinstance(base, ConformalCalibrator) or not base.is_fitted:
            raise ValueError(
                f"base must be a fitted ConformalCalibrator; got {short(base)}. "
                "Call ConformalCalibrator().fit(magnitudes) first."
            )
        self.base = base
        self.alpha = validate_alpha(sensitivity_to_alpha(DEFAULT_SENSITIVITY) if alpha is None else alpha)
        self.half_life = _at_least("half_life", half_life, 1.0)
        self.burst_half_life = _at_least("burst_half_life", burst_half_life, 1.0)
        default_rate = min(0.5, max(0.05, 10.0 * self.alpha))
        self.burst_rate = _rate("burst_rate", default_rate if burst_rate is None else burst_rate, self.alpha)
        self.min_ratio = _at_least("min_ratio", min_ratio, 1e-6)
        self.max_ratio = _at_least("max_ratio", max_ratio, self.min_ratio)
        self.base_threshold = base.threshold(self.alpha)  # magnitude flagged at calibration scale
        self.base_scale = _clipped_mean(base.sample, self.base_threshold)
        self.running_scale = self.base_scale
        self.flag_rate = self.alpha
        self.n_updates = 0

    @property
    def scale_ratio(self) -> float:
        """Running scale / calibration scale (> 1: residuals larger than at calibration)."""
        ratio = self.running_scale / self.base_scale
        return min(self.max_ratio, max(self.min_ratio, ratio))

    @property
    def is_frozen(self) -> bool:
        """True while the recent flag rate suspends updates (inside an anomalous burst)."""
        return self.flag_rate > self.burst_rate

    # ---------------------------------------------------------------- scoring
    def p_value(self, magnitude: float) -> float:
        """p-value of one magnitude under the current scale (no update). NaN gives NaN."""
        return self._p_value_core(_magnitude(magnitude))

    def score(self, magnitude: float) -> float:
        """Calibrated score `1 - p_value` of one magnitude under the current scale (no update)."""
        return 1.0 - self.p_value(magnitude)

    def update(self, magnitude: float, flagged: bool) -> None:
        """Feed one scored point back. `flagged` points and points inside a burst do not move the scale."""
        if not isinstance(flagged, (bool, np.bool_)):
            raise ValueError(f"flagged must be a bool; got {short(flagged)}. Pass score >= 1 - alpha.")
        self._update_core(_magnitude(magnitude), bool(flagged))

    def update_and_score(self, magnitude: float) -> float:
        """Score one magnitude, flag it at `alpha`, update the scale with it; returns the score (NaN if NaN)."""
        value = _magnitude(magnitude)
        score = 1.0 - self._p_value_core(value)
        self._update_core(value, score >= score_threshold(self.alpha))
        return score

    def _p_value_core(self, magnitude: float) -> float:
        if math.isnan(magnitude):
            return math.nan
        return float(self.base._p_value_core(np.array([magnitude / self.scale_ratio]))[0])

    def _update_core(self, magnitude: float, flagged: bool) -> None:
        if math.isnan(magnitude):
            return
        self.flag_rate += _weight(self.burst_half_life) * (float(flagged) - self.flag_rate)
        if flagged or self.is_frozen:
            return
        clipped = min(magnitude, self.base_threshold * self.scale_ratio)
        self.running_scale += _weight(self.half_life) * (clipped - self.running_scale)
        self.n_updates += 1

    # ---------------------------------------------------------------- state
    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable state, including the base calibrator."""
        return {
            "kind": "AdaptiveCalibrator",
            "base": self.base.to_state(),
            "alpha": self.alpha,
            "half_life": self.half_life,
            "burst_half_life": self.burst_half_life,
            "burst_rate": self.burst_rate,
            "min_ratio": self.min_ratio,
            "max_ratio": self.max_ratio,
            "running_scale": self.running_scale,
            "flag_rate": self.flag_rate,
            "n_updates": self.n_updates,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Restore exactly: the next scores equal those the original object would have produced."""
        check_kind(state, "AdaptiveCalibrator", cls.__name__)
        name = cls.__name__
        restored = cls(
            ConformalCalibrator.from_state(state_field(state, "base", name)),
            alpha=state_field(state, "alpha", name),
            half_life=state_field(state, "half_life", name),
            burst_half_life=state_field(state, "burst_half_life", name),
            burst_rate=state_field(state, "burst_rate", name),
            min_ratio=state_field(state, "min_ratio", name),
            max_ratio=state_field(state, "max_ratio", name),
        )
        restored.running_scale = _at_least(
            "state['running_scale']", state_field(state, "running_scale", name), 0
        )
        restored.flag_rate = real_number("state['flag_rate']", state_field(state, "flag_rate", name))
        restored.n_updates = int(state_field(state, "n_updates", name))
        return restored


def _weight(half_life: float) -> float:
    """EWMA weight of the newest point for a half-life in points."""
    return 1.0 - math.pow(0.5, 1.0 / half_life)


def _clipped_mean(sample: FloatArray, threshold: float) -> float:
    """Mean of the calibration magnitudes that would not be flagged (the statistic the EWMA tracks)."""
    below = sample[sample < threshold]
    mean = float(below.mean()) if below.size else float(sample.mean())
    if mean <= 0.0:
        raise ValueError(
            "base calibration sample has zero scale (all magnitudes 0 below the threshold); "
            "fit the base calibrator on residuals of real validation data."
        )
    return mean


def _magnitude(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"magnitude must be a number >= 0 (or NaN); got {short(value)}. Pass one float.")
    result = float(value)
    if result < 0:
        raise ValueError(
            f"magnitude must be >= 0; got {result!r}. Pass ResidualScores.magnitude, not signed."
        )
    return result


def _at_least(name: str, value: Any, minimum: float) -> float:
    result = real_number(name, value)
    if result < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}; got {result!r}. Pass a larger value.")
    return result


def _rate(name: str, value: Any, alpha: float) -> float:
    result = real_number(name, value)
    if not alpha < result <= 1.0:
        raise ValueError(
            f"{name} must lie in (alpha={alpha:g}, 1]; got {result!r}. "
            "It must exceed the normal flag rate alpha or updates would stop during normal operation."
        )
    return result
