"""Batch anomaly detection: (values, quantile forecasts) -> calibrated scores, flags and directions.

Pipeline per point: `SpreadResidualScorer` (residual in units of the forecast spread) -> the series'
`ConformalCalibrator` (p-value, score = 1 - p) -> flag when score >= 1 - alpha, alpha from the sensitivity.

`calibrate_from_residuals` builds the calibrator after training, from the model's forecasts on held-out
validation data (which must not have been used for fitting the weights, or the residuals are too small and
every later point looks anomalous).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from app.anomaly._validation import FloatArray, check_kind, short, state_field
from app.anomaly.calibration import CalibrationSet, ConformalCalibrator
from app.anomaly.residuals import (
    ResidualScores,
    SpreadResidualScorer,
    validate_levels,
    validate_values_and_quantiles,
)
from app.anomaly.sensitivity import (
    DEFAULT_SENSITIVITY,
    is_flagged,
    sensitivity_to_alpha,
    validate_sensitivity,
)


@dataclass(frozen=True)
class DetectionResult:
    """Per-point detection output; points without a forecast have NaN score and are never anomalous."""

    expected: FloatArray  # [N] forecast median
    lower: FloatArray  # [N] lower edge of the central interval
    upper: FloatArray  # [N] upper edge of the central interval
    residual: FloatArray  # [N] signed residual in units of the forecast spread
    score: FloatArray  # [N] calibrated score in [0, 1]; NaN = no forecast
    p_value: FloatArray  # [N] 1 - score
    is_anomaly: npt.NDArray[np.bool_]  # [N]
    direction: npt.NDArray[np.object_]  # [N] "up" / "down" where anomalous, None otherwise
    alpha: float  # target false-alarm rate used for the flags


class ResidualDetector:
    """Scores a batch of observations against their quantile forecasts.

    Args:
        calibration: a `CalibrationSet` (per-series calibrators + global fallback) or one calibrator.
        sensitivity: in [0, 1]; 0.5 flags about 3 in 1000 normal points (see `app.anomaly.sensitivity`).
        scorer: nonconformity scorer; must be the one the calibrators were fitted with (default 80 % interval).
    """

    def __init__(
        self,
        calibration: CalibrationSet | ConformalCalibrator,
        sensitivity: float = DEFAULT_SENSITIVITY,
        scorer: SpreadResidualScorer | None = None,
    ) -> None:
        if isinstance(calibration, ConformalCalibrator):
            calibration = CalibrationSet(calibration)
        if not isinstance(calibration, CalibrationSet):
            raise ValueError(
                f"calibration must be a CalibrationSet or a fitted ConformalCalibrator; got {short(calibration)}. "
                "Build one with calibrate_from_residuals(values, quantiles, levels) on validation data."
            )
        if scorer is not None and not isinstance(scorer, SpreadResidualScorer):
            raise ValueError(f"scorer must be a SpreadResidualScorer or None; got {short(scorer)}.")
        self.calibration = calibration
        self.sensitivity = validate_sensitivity(sensitivity)
        self.scorer = scorer or SpreadResidualScorer()

    @property
    def alpha(self) -> float:
        """Target false-alarm rate per normal point."""
        return sensitivity_to_alpha(self.sensitivity)

    def detect(
        self, values: Any, quantiles: Any, quantile_levels: Any, series_id: str | None = None
    ) -> DetectionResult:
        """Detect anomalies in `values` [N] given `quantiles` [N, Q] at `quantile_levels` [Q].

        An all-NaN quantile row means "no forecast for this point": its score is NaN and it is not flagged.
        `series_id` selects the series' own calibrator when the calibration set has one.
        """
        if series_id is not None and not isinstance(series_id, str):
            raise ValueError(f"series_id must be a str or None; got {short(series_id)}. Pass the series id.")
        levels = validate_levels(quantile_levels)
        self.scorer._check_levels_cover(levels)
        vals, quants = validate_values_and_quantiles(values, quantiles, levels.size)
        return self._detect_core(vals, quants, levels, self.calibration.for_series(series_id))

    def _detect_core(
        self, values: FloatArray, quantiles: FloatArray, levels: FloatArray, calibrator: ConformalCalibrator
    ) -> DetectionResult:
        residuals: ResidualScores = self.scorer._score_core(values, quantiles, levels)
        p_value = calibrator._p_value_core(residuals.magnitude)  # [N]; NaN where no forecast
        score = 1.0 - p_value
        alpha = self.alpha
        flagged = is_flagged(score, alpha)  # [N]
        direction = residuals.direction.copy()  # [N] object
        direction[~flagged] = None
        return DetectionResult(
            expected=residuals.expected,
            lower=residuals.lower,
            upper=residuals.upper,
            residual=residuals.signed,
            score=score,
            p_value=p_value,
            is_anomaly=flagged,
            direction=direction,
            alpha=alpha,
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "ResidualDetector",
            "sensitivity": self.sensitivity,
            "scorer": self.scorer.to_state(),
            "calibration": self.calibration.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "ResidualDetector", cls.__name__)
        return cls(
            CalibrationSet.from_state(state_field(state, "calibration", cls.__name__)),
            sensitivity=state_field(state, "sensitivity", cls.__name__),
            scorer=SpreadResidualScorer.from_state(state_field(state, "scorer", cls.__name__)),
        )


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
