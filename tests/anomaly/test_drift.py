"""AdaptiveCalibrator: follows slow scale drift, catches anomalies during drift, ignores bursts."""

import json

import numpy as np
import pytest

from app.anomaly import AdaptiveCalibrator, ConformalCalibrator, SpreadResidualScorer

LEVELS = [0.1, 0.5, 0.9]
Z90 = 1.2815515655446004
ALPHA = 0.01


def magnitudes(values: np.ndarray) -> np.ndarray:
    """Magnitudes of `values` against a fixed N(0, 1) quantile forecast (unaware of any drift)."""
    quantiles = np.tile([-Z90, 0.0, Z90], (values.size, 1))
    return SpreadResidualScorer().score(values, quantiles, LEVELS).magnitude


@pytest.fixture(scope="module")
def base() -> ConformalCalibrator:
    return ConformalCalibrator().fit(magnitudes(np.random.default_rng(20).normal(size=2000)))


def replay(calibrator: AdaptiveCalibrator, mags: np.ndarray) -> np.ndarray:
    """Feed a stream point by point, as the stream scorer does; returns the scores."""
    return np.array([calibrator.update_and_score(float(m)) for m in mags])


def drifting_values(seed: int, n: int = 20_000) -> np.ndarray:
    scale = np.linspace(1.0, 3.0, n)  # residual scale grows 3x
    return np.random.default_rng(seed).normal(size=n) * scale


@pytest.mark.slow
def test_adaptive_keeps_false_alarm_rate_under_slow_drift(base):
    mags = magnitudes(drifting_values(21))
    adaptive = replay(AdaptiveCalibrator(base, alpha=ALPHA), mags)
    static = base.score(mags)
    adaptive_rate = float(np.mean(adaptive >= 1 - ALPHA))
    static_rate = float(np.mean(static >= 1 - ALPHA))
    assert 0.5 * ALPHA <= adaptive_rate <= 2 * ALPHA, adaptive_rate
    assert static_rate > 10 * ALPHA, static_rate
    last_quarter = adaptive[-5000:]
    assert np.mean(last_quarter >= 1 - ALPHA) <= 2.5 * ALPHA


@pytest.mark.slow
def test_spike_during_drift_is_caught(base):
    values = drifting_values(22)
    spikes = [12_000, 16_000, 19_500]
    for index in spikes:
        values[index] = -6.0 * (1.0 + 2.0 * index / 20_000)  # 6 sigma of the current scale, downwards
    scores = replay(AdaptiveCalibrator(base, alpha=ALPHA), magnitudes(values))
    assert np.all(scores[spikes] >= 1 - ALPHA)
    assert np.all(scores[spikes] > 0.9999)


@pytest.mark.slow
def test_scale_follows_drift(base):
    calibrator = AdaptiveCalibrator(base, alpha=ALPHA)
    replay(calibrator, magnitudes(drifting_values(23)))
    assert calibrator.scale_ratio == pytest.approx(3.0, rel=0.1)


@pytest.mark.parametrize("burst", ["noise_x5", "shift"])
def test_long_anomalous_burst_does_not_inflate_scale(base, burst):
    rng = np.random.default_rng(24)
    calibrator = AdaptiveCalibrator(base, alpha=ALPHA)
    replay(calibrator, magnitudes(rng.normal(size=3000)))
    before = calibrator.scale_ratio
    anomalous = rng.normal(size=1000) * 5.0 if burst == "noise_x5" else rng.normal(size=1000) + 6.0
    burst_scores = replay(calibrator, magnitudes(anomalous))
    assert calibrator.scale_ratio == pytest.approx(before, rel=0.05)
    assert np.mean(burst_scores >= 1 - ALPHA) > 0.3  # still flagging at the end as at the start
    assert np.mean(burst_scores[-200:] >= 1 - ALPHA) > 0.3
    after = replay(calibrator, magnitudes(rng.normal(size=2000)))
    assert np.mean(after[500:] >= 1 - ALPHA) < 3 * ALPHA  # back to normal once the burst is over


def test_without_burst_guard_a_variance_burst_leaks_into_the_scale(base):
    rng = np.random.default_rng(25)
    calibrator = AdaptiveCalibrator(base, alpha=ALPHA, burst_rate=1.0)  # guard disabled
    replay(calibrator, magnitudes(rng.normal(size=3000)))
    replay(calibrator, magnitudes(rng.normal(size=1000) * 5.0))
    assert calibrator.scale_ratio > 1.5  # documents why the guard exists


def test_score_does_not_update_and_update_respects_flag(base):
    calibrator = AdaptiveCalibrator(base, alpha=ALPHA)
    scale = calibrator.running_scale
    calibrator.score(50.0)
    calibrator.update(50.0, flagged=True)
    assert calibrator.running_scale == scale
    calibrator.update(50.0, flagged=False)  # clipped at the threshold
    assert scale < calibrator.running_scale < scale + 0.01 * base.threshold(ALPHA)
    assert np.isnan(calibrator.update_and_score(float("nan")))


@pytest.mark.slow
@pytest.mark.parametrize("split", [100, 7000])
def test_state_round_trip_gives_identical_scores(base, split):
    mags = magnitudes(drifting_values(26, n=8000))
    mags[5000:5300] *= 6  # restore inside a frozen burst too
    original = AdaptiveCalibrator(base, alpha=ALPHA)
    replay(original, mags[:split])
    state = json.loads(json.dumps(original.to_state(), allow_nan=False))
    restored = AdaptiveCalibrator.from_state(state)
    np.testing.assert_array_equal(replay(restored, mags[split:]), replay(original, mags[split:]))
    assert restored.to_state() == original.to_state()


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda b: AdaptiveCalibrator(ConformalCalibrator()), r"base must be a fitted ConformalCalibrator"),
        (lambda b: AdaptiveCalibrator(b, alpha=0.0), r"alpha must lie strictly between 0 and 1; got 0\.0"),
        (lambda b: AdaptiveCalibrator(b, half_life=0.5), r"half_life must be >= 1; got 0\.5"),
        (
            lambda b: AdaptiveCalibrator(b, alpha=0.1, burst_rate=0.05),
            r"burst_rate must lie in \(alpha=0\.1, 1\]",
        ),
        (lambda b: AdaptiveCalibrator(b).update_and_score(-1.0), r"magnitude must be >= 0; got -1\.0"),
        (lambda b: AdaptiveCalibrator(b).update_and_score("3"), r"magnitude must be a number .* got '3'"),
        (lambda b: AdaptiveCalibrator(b).update(1.0, flagged=None), r"flagged must be a bool; got None"),
    ],
)
def test_validation_messages(base, call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(base)
