"""Residual-based anomaly detection on quantile forecasts (pure numpy).

Flow: `SpreadResidualScorer` turns (value, quantile forecast) into a nonconformity magnitude;
`ConformalCalibrator` (fitted on validation residuals, one per series or a global one in a `CalibrationSet`)
turns magnitudes into calibrated scores; a point is flagged when score >= 1 - alpha with alpha set by the
sensitivity (`sensitivity_to_alpha`). `ResidualDetector` does this for a batch. For streams,
`AdaptiveCalibrator` follows slow drift of the residual scale and `AlarmPolicy` turns flags into alarm
episodes. Every stateful object has `to_state()` / `from_state()` (JSON-serialisable).
"""

from app.anomaly.calibration import CalibrationSet, ConformalCalibrator, GeneralizedParetoTail
from app.anomaly.detector import DetectionResult, ResidualDetector, calibrate_from_residuals
from app.anomaly.drift import AdaptiveCalibrator
from app.anomaly.episodes import AlarmEvent, Episode, EpisodeTracker, PointRecord
from app.anomaly.residuals import ResidualScores, SpreadResidualScorer
from app.anomaly.rules import AlarmPolicy, ConsecutiveRule, CooldownRule, KOfNRule, TriggerRule
from app.anomaly.sensitivity import (
    DEFAULT_SENSITIVITY,
    sensitivity_to_alpha,
)

__all__ = [
    "DEFAULT_SENSITIVITY",
    "AdaptiveCalibrator",
    "AlarmEvent",
    "AlarmPolicy",
    "CalibrationSet",
    "ConformalCalibrator",
    "ConsecutiveRule",
    "CooldownRule",
    "DetectionResult",
    "Episode",
    "EpisodeTracker",
    "GeneralizedParetoTail",
    "KOfNRule",
    "PointRecord",
    "ResidualDetector",
    "ResidualScores",
    "SpreadResidualScorer",
    "TriggerRule",
    "calibrate_from_residuals",
    "sensitivity_to_alpha",
]
