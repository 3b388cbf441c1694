"""Streaming post-processing rules: likelihood, run suppression, range break (causality, state, validation)."""

import json

import numpy as np
import pytest

from app.anomaly.postprocess import AnomalyLikelihood, RangeBreak, RunSuppressor


def roundtrip(state: dict) -> dict:
    return json.loads(json.dumps(state))


# ----------------------------------------------------------------------------------------------- likelihood


def noise(n: int, seed: int = 0) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).normal(size=n))


def test_likelihood_scores_in_unit_interval_and_zero_before_history() -> None:
    scores = AnomalyLikelihood(min_history=50).score(noise(500))
    assert scores.shape == (500,)
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.all(scores[:98] == 0)  # 50 raw scores, then 50 earlier means are needed


def test_likelihood_flags_a_burst_far_above_noise() -> None:
    raw = noise(1500)
    raw[1200:1210] = 50.0
    scores = AnomalyLikelihood().score(raw)
    assert scores[1200:1210].max() > 0.5
    assert scores[1200:1210].max() > scores[:1200].max() + 0.2


def test_likelihood_is_causal_and_streaming_equals_batch() -> None:
    raw = noise(800)
    batch = AnomalyLikelihood().score(raw)
    streaming = AnomalyLikelihood()
    parts = np.concatenate([streaming.score(raw[:300]), streaming.score(raw[300:])])
    np.testing.assert_allclose(parts, batch)
    changed = raw.copy()
    changed[600:] = 99.0
    np.testing.assert_allclose(AnomalyLikelihood().score(changed)[:600], batch[:600])


def test_likelihood_is_scale_free() -> None:
    raw = noise(600)
    np.testing.assert_allclose(AnomalyLikelihood().score(raw), AnomalyLikelihood().score(1000 * raw))


def test_likelihood_nan_scores_zero_and_changes_nothing() -> None:
    raw = noise(400)
    with_gap = np.insert(raw, 200, np.nan)
    scores = AnomalyLikelihood().score(with_gap)
    assert scores[200] == 0
    np.testing.assert_allclose(np.delete(scores, 200), AnomalyLikelihood().score(raw))


def test_likelihood_warm_up_then_state_roundtrip() -> None:
    raw = noise(900)
    first = AnomalyLikelihood()
    first.warm_up(raw[:400])
    restored = AnomalyLikelihood.from_state(roundtrip(first.to_state()))
    np.testing.assert_allclose(restored.score(raw[400:]), first.score(raw[400:]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"history": 1}, "history"), ({"smoothing": 0}, "smoothing"), ({"decades": 0}, "decades")],
)
def test_likelihood_rejects_bad_configuration(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnomalyLikelihood(**kwargs)


def test_likelihood_rejects_infinite_scores_and_wrong_state() -> None:
    with pytest.raises(ValueError, match="raw_scores"):
        AnomalyLikelihood().score([1.0, np.inf])
    with pytest.raises(ValueError, match="kind"):
        AnomalyLikelihood.from_state(RangeBreak().to_state())


# ----------------------------------------------------------------------------------------------- suppression


def test_suppressor_keeps_first_row_of_a_run() -> None:
    scores = np.array([0.1, 0.9, 0.8, 0.95, 0.1, 0.2])
    out = RunSuppressor(level=0.5, cooldown=3, damping=0.0).apply(scores)
    np.testing.assert_allclose(out, [0.1, 0.9, 0.0, 0.0, 0.1, 0.2])


def test_suppressor_cooldown_and_damping() -> None:
    scores = np.array([0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.9])
    out = RunSuppressor(level=0.5, cooldown=3, damping=0.5).apply(scores)
    # row 3 is 3 rows after the alarm at 0 -> damped; row 7 is 4 rows after row 3 -> kept
    np.testing.assert_allclose(out, [0.9, 0.1, 0.1, 0.45, 0.1, 0.1, 0.1, 0.9])


def test_suppressor_state_carries_over_calls() -> None:
    first = RunSuppressor(level=0.5, cooldown=5)
    first.apply([0.0, 0.9])
    restored = RunSuppressor.from_state(roundtrip(first.to_state()))
    np.testing.assert_allclose(restored.apply([0.9, 0.2]), [0.45, 0.2])


@pytest.mark.parametrize("scores", [[0.5, 1.5], [-0.1], [np.nan]])
def test_suppressor_rejects_scores_outside_unit_interval(scores: list) -> None:
    with pytest.raises(ValueError, match="scores"):
        RunSuppressor().apply(scores)


def test_suppressor_rejects_bad_damping() -> None:
    with pytest.raises(ValueError, match="damping"):
        RunSuppressor(damping=1.0)


# ----------------------------------------------------------------------------------------------- range break


def test_range_break_against_earlier_rows_only() -> None:
    breaker = RangeBreak(margin=0.0)
    out = breaker.score([5.0, 6.0, 5.5, 4.0, 7.0, 6.9])
    np.testing.assert_allclose(out, [0, 1, 0, 1, 1, 0])


def test_range_break_margin_and_warm_up() -> None:
    breaker = RangeBreak(margin=0.1)
    breaker.warm_up([0.0, 10.0])
    np.testing.assert_allclose(breaker.score([10.9, 12.5, -0.5]), [0, 1, 0])


def test_range_break_state_roundtrip_and_empty_state() -> None:
    breaker = RangeBreak()
    breaker.warm_up([1.0, 2.0])
    restored = RangeBreak.from_state(roundtrip(breaker.to_state()))
    np.testing.assert_allclose(restored.score([3.0, 1.5]), breaker.score([3.0, 1.5]))
    fresh = RangeBreak.from_state(roundtrip(RangeBreak().to_state()))
    np.testing.assert_allclose(fresh.score([1.0, 1.0]), [0, 0])


def test_range_break_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="margin"):
        RangeBreak(margin=-1)
    with pytest.raises(ValueError, match="values"):
        RangeBreak().score([1.0, np.nan])
