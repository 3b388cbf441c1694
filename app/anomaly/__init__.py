"""Anomaly detection (pure numpy): the one detector, its scored points and alarm episodes.

`Detector` (app.anomaly.detector) scores readings one at a time, streaming-first, with a self-learned forecaster
or a registered model's forecasts; `detect_series` folds it over a series. `AlarmPolicy` groups flagged points
into `Episode`s. `CalibrationSet` is the validation-residual summary training stores in a model's manifest
(the training report's flag rate); detection does not use it.
"""

from app.anomaly.calibration import (
    CalibrationSet,
    ConformalCalibrator,
    GeneralizedParetoTail,
    calibrate_from_residuals,
)
from app.anomaly.detector import Detector, DetectorConfig, detect_series
from app.anomaly.episodes import AlarmEvent, Episode, EpisodeTracker, PointRecord
from app.anomaly.points import ScoredPoint
from app.anomaly.residuals import ResidualScores, SpreadResidualScorer
from app.anomaly.rules import AlarmPolicy, ConsecutiveRule, CooldownRule, KOfNRule, TriggerRule
from app.anomaly.sensitivity import DEFAULT_SENSITIVITY, sensitivity_to_alpha

__all__ = [
    "DEFAULT_SENSITIVITY",
    "AlarmEvent",
    "AlarmPolicy",
    "CalibrationSet",
    "ConformalCalibrator",
    "ConsecutiveRule",
    "CooldownRule",
    "Detector",
    "DetectorConfig",
    "Episode",
    "EpisodeTracker",
    "GeneralizedParetoTail",
    "KOfNRule",
    "PointRecord",
    "ResidualScores",
    "ScoredPoint",
    "SpreadResidualScorer",
    "TriggerRule",
    "calibrate_from_residuals",
    "detect_series",
    "sensitivity_to_alpha",
]
