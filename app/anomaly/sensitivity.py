"""User-facing sensitivity <-> target false-alarm rate.

Sensitivity is a number in [0, 1]; higher flags more. It sets the target false-alarm rate `alpha`, the fraction
of *normal* points that get flagged, on a log scale: `alpha = 10 ** (3 * sensitivity - 4)`.

    sensitivity 0.0  -> alpha 1e-4    flags about 1 in 10 000 normal points
    sensitivity 0.25 -> alpha 5.6e-4  flags about 1 in 1 800 normal points
    sensitivity 0.5  -> alpha 3.2e-3  flags about 3 in 1 000 normal points (default)
    sensitivity 0.75 -> alpha 0.018   flags about 2 in 100 normal points
    sensitivity 1.0  -> alpha 0.1     flags about 1 in 10 normal points

Each +0.1 of sensitivity doubles the false-alarm rate (x 10 ** 0.3). For a series sampled every 5 minutes
(288 points a day), sensitivity 0.5 means roughly one flagged normal point a day; anomalies that stand out
clearly are flagged at any sensitivity. The detector (`app.anomaly.detector`) flags a reading when the measured
frequency of scores at least as high as its own, in the same series, is <= alpha (`ScoreCalibrator`).
"""

from __future__ import annotations

from typing import Any

from app.anomaly._validation import real_number

DEFAULT_SENSITIVITY = 0.5


def sensitivity_to_alpha(sensitivity: float = DEFAULT_SENSITIVITY) -> float:
    """Target false-alarm rate per normal point for a sensitivity in [0, 1]."""
    value = validate_sensitivity(sensitivity)
    return float(10.0 ** (3.0 * value - 4.0))


def validate_sensitivity(sensitivity: Any) -> float:
    """`sensitivity` as a float in [0, 1]."""
    value = real_number("sensitivity", sensitivity)
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"sensitivity must lie in [0, 1]; got {value!r}. "
            "Use 0 for the fewest alarms, 1 for the most, 0.5 (default) for about 3 in 1000 normal points."
        )
    return value
