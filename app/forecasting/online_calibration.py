"""Online interval calibration: keep each interval's coverage at its level while the data shifts (pure numpy).

Training calibrates the intervals once, on the validation months (`app.training.evaluation.calibrate_intervals`).
When the series' spread changes later, a fixed calibration under- or over-covers. `OnlineCalibrator` corrects
each training-calibrated band from the forecasts whose actuals have since arrived.

What it tracks. For every horizon step h, interval level and side, a factor f that scales the band's half-width
around the median: lower' = median - f_low (median - lower), upper' = median + f_high (upper - median). Each side
targets its own miss rate a = (1 - level) / 2, so one-sided shifts (a bias) are corrected too.

How it learns: quantile tracking (the proportional part of Angelopoulos, Candès & Tibshirani's conformal PID
control, the fixed-state relative of Gibbs & Candès' adaptive conformal inference). Each resolved forecast updates
log f <- log f + step (miss - a), with miss = 1 when the actual fell beyond that side of the band *as it was
answered*, i.e. widened with the factor in force when the forecast was issued (h actuals earlier for step h). A side
that misses more often than a widens, one that misses less narrows. Because log f moves by step (miss - a) per
forecast, after T forecasts the issued bands' miss rate is within (B + step) / (step T) of a, where B is the range
log f travels (clipped to [LOG_MIN, LOG_MAX]): with step 0.05 and B about 2, 0.02 after 2,000 actuals, however the
data shift. (Judging a miss with the factor of the update time instead lets the bands of long steps lag: on the
ETTh1 test months that held 80% intervals at 0.767, the issue-time rule at 0.795; `bench/intervals.py`.) Log space
keeps the update scale-free: the same step for every series and level.

Time. Actuals come in order, one position each. The forecast from position p (made once the actual at p was known)
is issued with the factors in force right after p was folded in; the last H such factor sets are kept in a ring.

State: 2 x H x L factors, the ring of H x 2 x H x L (float32) and two counters, fixed per key; `to_state` /
`from_state` carry a version.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

STATE_KIND = "OnlineCalibrator"
STATE_VERSION = 1
DEFAULT_STEP = 0.05
LOG_MIN, LOG_MAX = float(np.log(0.1)), float(np.log(10.0))  # f stays within [0.1, 10] of the training band
WIDTH_FLOOR = 1e-12


class OnlineCalibrator:
    """Per (horizon step, level, side) width factors learned from resolved forecasts (see module docstring)."""

    def __init__(self, horizon: int, levels: tuple[float, ...], step: float = DEFAULT_STEP) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1; got {horizon}")
        if (
            not levels
            or any(not 0.0 < level < 100.0 for level in levels)
            or list(levels) != sorted(set(levels))
        ):
            raise ValueError(f"levels must be distinct, increasing and in (0, 100); got {levels}")
        if not 0.0 < step <= 1.0:
            raise ValueError(f"step must be in (0, 1]; got {step}")
        self.horizon = horizon
        self.levels = tuple(float(level) for level in levels)
        self.step = step
        self.log_factors = np.zeros((2, horizon, len(levels)))  # [side (low, high), H, L]
        # factors the forecasts from the last H positions were issued with: [H (position mod H), 2, H, L]
        self.issued = np.zeros((horizon, 2, horizon, len(levels)), dtype=np.float32)
        self.position = 0  # actuals told so far (the next actual's position)
        self.observations = 0  # actuals that resolved at least one forecast
        self._miss_target = (1.0 - np.array(self.levels) / 100.0) / 2.0  # [L]

    # ------------------------------------------------------------------ learning
    def update(self, median: np.ndarray, lower: np.ndarray, upper: np.ndarray, actuals: np.ndarray) -> None:
        """Fold in `actuals` [n], the next n actuals in order, with the forecasts they resolve: median [E, H] and
        the bands of `levels` as forecast (before this calibration) lower/upper [E, H, L] from E consecutive
        origins, oldest first, the last one the position just before the newest actual (E <= n + H - 1; E = 0
        while no forecast can be made yet: the actuals still count as positions)."""
        count = len(actuals)
        origins = median.shape[0]
        if median.ndim != 2 or median.shape[1] != self.horizon:
            raise ValueError(f"median must be [E, {self.horizon}]; got {median.shape}")
        band_shape = (origins, self.horizon, len(self.levels))
        if lower.shape != band_shape or upper.shape != band_shape:
            raise ValueError(f"lower and upper must be {list(band_shape)}; got {lower.shape}, {upper.shape}")
        if actuals.ndim != 1 or (origins and not count) or origins > count + self.horizon - 1:
            raise ValueError(
                f"{count} actuals resolve forecasts from at most {count + self.horizon - 1} origins; got {origins}"
            )
        if not (np.isfinite(median).all() and np.isfinite(lower).all() and np.isfinite(upper).all()):
            raise ValueError("forecasts must be finite")
        if not np.isfinite(actuals).all():
            raise ValueError("actuals must be finite")
        self._update(
            median.astype(np.float64),
            lower.astype(np.float64),
            upper.astype(np.float64),
            actuals.astype(np.float64),
        )

    def _update(self, median: np.ndarray, lower: np.ndarray, upper: np.ndarray, actuals: np.ndarray) -> None:
        """Position by position: resolve the forecasts that reach it (judged with their issue-time factors), then
        record the factors the forecast from this position is issued with."""
        horizon = self.horizon
        first_origin = self.position + len(actuals) - 1 - median.shape[0]  # position of row 0's origin
        steps = np.arange(1, horizon + 1)  # [H]
        below = np.maximum(median[..., None] - lower, WIDTH_FLOOR)  # [E, H, L]
        above = np.maximum(upper - median[..., None], WIDTH_FLOOR)  # [E, H, L]
        for offset, actual in enumerate(actuals):
            position = self.position + offset
            origins = position - steps  # [H] the origin each step's forecast of this actual came from
            rows = origins - first_origin
            usable = (rows >= 0) & (origins >= 0)
            if usable.any():
                row, step = rows[usable], steps[usable] - 1  # [V] each
                centre = median[row, step][:, None]  # [V, 1]
                needed = np.stack(
                    [(centre - actual) / below[row, step], (actual - centre) / above[row, step]], axis=1
                )  # [V, 2, L]
                issued = self.issued[origins[usable] % horizon, :, step]  # [V, 2, L]
                missed = needed > np.exp(issued)
                change = self.step * (missed - self._miss_target)  # [V, 2, L]
                updated = self.log_factors[:, step] + change.transpose(1, 0, 2)  # [2, V, L]
                self.log_factors[:, step] = np.clip(updated, LOG_MIN, LOG_MAX)
                self.observations += 1
            self.issued[position % horizon] = self.log_factors
        self.position += len(actuals)

    # ------------------------------------------------------------------ applying
    def factors(self, levels: list[float], steps: int) -> np.ndarray:
        """Width factors for any `levels` over the first `steps` steps: [2, steps, K]. Levels between tracked
        ones interpolate log f linearly in the level; beyond them the nearest tracked level's factor holds;
        steps beyond the horizon (recursive forecasts) keep the last step's."""
        rows = np.minimum(np.arange(steps), self.horizon - 1)
        tracked = self.log_factors[:, rows]  # [2, steps, L]
        anchor = np.array(self.levels)
        wanted = np.clip(np.asarray(levels, dtype=np.float64), anchor[0], anchor[-1])  # [K]
        upper = np.clip(np.searchsorted(anchor, wanted), 1, max(len(anchor) - 1, 1))  # [K]
        if len(anchor) == 1:
            mixed: np.ndarray = np.repeat(tracked, len(levels), axis=2)  # [2, steps, 1] -> [2, steps, K]
        else:
            low_level, high_level = anchor[upper - 1], anchor[upper]
            weight = (wanted - low_level) / (high_level - low_level)  # [K]
            mixed = tracked[..., upper - 1] * (1.0 - weight) + tracked[..., upper] * weight  # [2, steps, K]
        factors: np.ndarray = np.exp(mixed)
        return factors

    def widen(
        self, median: np.ndarray, lower: np.ndarray, upper: np.ndarray, levels: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The bands of `levels` corrected: median [S], lower/upper [K, S] -> (lower, upper) [K, S]."""
        factors = self.factors(levels, median.shape[0])  # [2, S, K]
        low = median[None] - factors[0].T * np.maximum(median[None] - lower, 0.0)
        high = median[None] + factors[1].T * np.maximum(upper - median[None], 0.0)
        return low, high

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "horizon": self.horizon,
            "levels": list(self.levels),
            "step": self.step,
            "observations": self.observations,
            "position": self.position,
            "log_factors": self.log_factors.tolist(),  # JSON floats round-trip exactly
            "issued": base64.b64encode(self.issued.astype("<f4").tobytes()).decode("ascii"),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OnlineCalibrator:
        if state.get("kind") != STATE_KIND or state.get("version") != STATE_VERSION:
            raise ValueError(
                f"not a {STATE_KIND} state of version {STATE_VERSION}; got kind {state.get('kind')!r}, "
                f"version {state.get('version')!r}"
            )
        calibrator = cls(int(state["horizon"]), tuple(state["levels"]), float(state["step"]))
        factors = np.array(state["log_factors"], dtype=np.float64)
        if factors.shape != calibrator.log_factors.shape:
            raise ValueError(f"log_factors must be {list(calibrator.log_factors.shape)}; got {factors.shape}")
        calibrator.log_factors = factors
        issued = np.frombuffer(base64.b64decode(state["issued"]), dtype="<f4").astype(np.float32)
        if issued.size != calibrator.issued.size:
            raise ValueError(f"issued must hold {calibrator.issued.size} values; got {issued.size}")
        calibrator.issued = issued.reshape(calibrator.issued.shape)
        calibrator.observations = int(state["observations"])
        calibrator.position = int(state["position"])
        return calibrator
