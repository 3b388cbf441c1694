"""The one detector: streaming = batch = restored, learning, timing policy, calibration and state."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pytest

from app.anomaly import Detector, DetectorConfig, ScoredPoint, detect_series, sensitivity_to_alpha
from app.anomaly.detector import STATE_VERSION
from app.anomaly.learned import period_index, spanning_index

START = datetime(2024, 1, 1)
STEP = timedelta(minutes=5)


def daily_series(n: int, seed: int = 0, noise: float = 0.3) -> tuple[list[datetime], list[float]]:
    """5-minute readings with a daily cycle and Gaussian noise."""
    rng = np.random.default_rng(seed)
    stamps = [START + i * STEP for i in range(n)]
    phase = 2 * np.pi * np.arange(n) / 288
    values = 10 + 3 * np.sin(phase) + rng.normal(0.0, noise, n)
    return stamps, [float(v) for v in values]


def stream(
    detector: Detector, stamps: Sequence[datetime], values: Sequence[float | None]
) -> list[ScoredPoint]:
    return [detector.update(t, v) for t, v in zip(stamps, values, strict=True)]


def test_batch_equals_stream_restored_from_json_at_every_step() -> None:
    stamps, values = daily_series(900)
    config = DetectorConfig(learning_points=200, refit_every=250)
    batch = detect_series(stamps, values, config)
    detector = Detector(config)
    restored: list[ScoredPoint] = []
    for t, v in zip(stamps, values, strict=True):
        restored.append(detector.update(t, v))
        detector = Detector.from_state(json.loads(json.dumps(detector.to_state())))
    assert restored == batch  # bitwise: dataclass equality compares the floats exactly
    assert detector.refits >= 2


def test_learning_then_scoring() -> None:
    stamps, values = daily_series(150)
    detector = Detector(DetectorConfig(learning_points=100))
    for i in range(99):
        point = detector.update(stamps[i], values[i])
        assert point.score is None and not point.is_anomaly and point.expected is None
        assert detector.state_name == "learning" and detector.points_until_ready == 99 - i
    detector.update(stamps[99], values[99])
    assert detector.state_name == "scoring" and detector.points_until_ready == 0
    point = detector.update(stamps[100], values[100])
    assert point.score is not None and point.expected is not None
    assert point.lower is not None and point.upper is not None and point.lower < point.expected < point.upper


def test_a_spike_is_flagged_at_the_default_sensitivity() -> None:
    stamps, values = daily_series(1200, seed=3)
    values[1000] += 6.0  # 20 noise standard deviations
    points = detect_series(stamps, values, DetectorConfig(learning_points=600))  # two days of readings
    assert points[1000].is_anomaly and points[1000].direction == "up"
    assert sum(p.is_anomaly for p in points[600:990]) <= 4  # about 1.2 expected at the default rate 3.2e-3


def test_a_level_shift_is_absorbed_within_a_few_readings() -> None:
    stamps, values = daily_series(1000, seed=4)
    shifted = [v + (5.0 if i >= 700 else 0.0) for i, v in enumerate(values)]
    points = detect_series(stamps, shifted, DetectorConfig(learning_points=300))
    assert points[700].is_anomaly
    errors = [
        abs(p.value - p.expected) for p in points[703:800] if p.value is not None and p.expected is not None
    ]
    assert max(errors) < 2.0  # noise 0.3: the expected line follows the new level from the third reading on
    assert sum(p.is_anomaly for p in points[720:1000]) <= 5  # new records of the new level; not every reading


@pytest.mark.parametrize("sensitivity", [0.2, 0.5, 0.8])
def test_flag_rate_on_noise_is_within_a_factor_of_two_of_the_documented_rate(sensitivity: float) -> None:
    rng = np.random.default_rng(7)
    n = 30_000
    stamps = [START + i * STEP for i in range(n)]
    values = [float(v) for v in rng.normal(0.0, 1.0, n)]
    points = detect_series(stamps, values, DetectorConfig(learning_points=500), sensitivity)
    rate = sum(p.is_anomaly for p in points) / (n - 500)
    alpha = sensitivity_to_alpha(sensitivity)
    assert alpha / 2 <= rate <= 2 * alpha, (rate, alpha)


def test_scores_do_not_pile_up_at_a_ceiling() -> None:
    rng = np.random.default_rng(8)
    n = 5000
    stamps = [START + i * STEP for i in range(n)]
    values = [float(v) for v in rng.standard_t(3, n)]  # heavy tails: many large ordinary errors
    scores = [p.score for p in detect_series(stamps, values, DetectorConfig(learning_points=300))[300:]]
    top = max(s for s in scores if s is not None)
    assert sum(s == top for s in scores) / len(scores) < 0.01


def test_duplicate_late_and_missing_readings_are_answered_and_not_fed() -> None:
    stamps, values = daily_series(300)
    detector = Detector(DetectorConfig(learning_points=100))
    stream(detector, stamps[:200], values[:200])
    fed = detector.fed
    duplicate = detector.update(stamps[199], 99.0)
    late = detector.update(stamps[150], 1.0)
    missing = detector.update(stamps[200], None)
    assert (duplicate.sampling, late.sampling, missing.sampling) == ("duplicate", "late", "missing")
    assert all(p.score is None and not p.is_anomaly for p in (duplicate, late, missing))
    assert missing.value is None and duplicate.value == 99.0
    assert detector.fed == fed and detector.count == 203
    assert detector.update(stamps[201], values[201]).sampling == "gap"  # the missing reading left a gap


def test_gaps_are_widened_or_reanchored_and_said() -> None:
    stamps, values = daily_series(400)
    detector = Detector(DetectorConfig(learning_points=100))
    stream(detector, stamps[:300], values[:300])
    gap = detector.update(stamps[305], values[305])
    far = detector.update(stamps[399], values[399])
    assert gap.sampling == "gap" and far.sampling == "reanchored"
    assert gap.score is not None and far.score is not None


def test_jittered_stamps_are_regular() -> None:
    rng = np.random.default_rng(2)
    stamps, values = daily_series(400)
    jittered = [t + timedelta(seconds=float(rng.uniform(-60, 60))) for t in stamps]
    points = detect_series(jittered, values, DetectorConfig(learning_points=100))
    assert {p.sampling for p in points} == {"regular"}


def test_series_without_timestamps_and_mostly_zero_values() -> None:
    rng = np.random.default_rng(5)
    values = [float(v) if rng.random() < 0.05 else 0.0 for v in rng.poisson(3.0, 800)]
    points = detect_series(None, values, DetectorConfig(learning_points=100))
    scored = [p.score for p in points if p.score is not None]
    assert len(scored) == 700 and all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in scored)
    for p in points[100:]:
        assert p.expected is not None and p.lower is not None and p.upper is not None
        assert math.isfinite(p.expected) and math.isfinite(p.lower) and math.isfinite(p.upper)


def test_sensitivity_changes_flags_not_scores() -> None:
    stamps, values = daily_series(800, seed=9)
    low = detect_series(stamps, values, DetectorConfig(learning_points=200), 0.1)
    high = detect_series(stamps, values, DetectorConfig(learning_points=200), 0.9)
    assert [p.score for p in low] == [p.score for p in high]
    assert sum(p.is_anomaly for p in low) <= sum(p.is_anomaly for p in high)


def test_state_is_versioned_and_refuses_what_it_does_not_know() -> None:
    state = Detector().to_state()
    assert state["kind"] == "Detector" and state["version"] == STATE_VERSION
    with pytest.raises(ValueError, match="version"):
        Detector.from_state({**state, "version": 99})
    with pytest.raises(ValueError, match="kind"):
        Detector.from_state({**state, "kind": "StreamScorer"})


@pytest.mark.parametrize("learning_points", [5, 19, 10_001])
def test_learning_points_out_of_range_names_the_parameter(learning_points: int) -> None:
    with pytest.raises(ValueError, match="learning_points"):
        DetectorConfig(learning_points=learning_points)


def test_seasonal_lookup_takes_the_nearest_reading_and_spans_a_dropped_one() -> None:
    """One period back lands between jittered readings (the nearer is taken) or in a gap (the reading after it,
    whose difference spans the gap, is taken): a dropped row or a jittered stamp does not void a seasonal input."""
    times = np.array([0.0, 260.0, 600.0, 1200.0, 1500.0])  # 300 s typical; 600 -> 1200 left one reading out
    at = np.array([1300.0, 1500.0, 1800.0, 3000.0])  # one period (1000 s) back: 300, 500, 800, 2000
    assert period_index(times, at, 1000.0, 150.0).tolist() == [1, 2, -1, -1]  # 300 is nearer 260 than 600
    assert spanning_index(times, at, 1000.0, 150.0).tolist() == [1, 2, 3, -1]  # 800 fell in the gap
