"""bench/nab_postprocess.py: likelihood, run suppression, range break, persistence gate (causality, state,
validation)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))  # as when bench/nab.py runs as a script

from nab_postprocess import AnomalyLikelihood, PersistenceGate, RangeBreak, RunSuppressor


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


# ----------------------------------------------------------------------------------------------- persistence gate


def test_gate_damps_brief_excursions_and_keeps_sustained_ones() -> None:
    scores = np.array([0.0, 0.5, 0.0, 0.0, 0.4, 0.4, 0.4, 0.4, 0.1])
    out = PersistenceGate(level=0.3, window=4, min_count=3, damping=0.5).apply(scores)
    # row 1 is alone; rows 4-5 have 1-2 hits in their window; rows 6-7 have 3-4; row 8 is below level
    np.testing.assert_allclose(out, [0.0, 0.25, 0.0, 0.0, 0.2, 0.2, 0.4, 0.4, 0.1])


def test_gate_counts_hits_in_a_sliding_window_only() -> None:
    scores = np.array([0.5, 0.5, 0.0, 0.0, 0.0, 0.5, 0.5])
    out = PersistenceGate(level=0.3, window=3, min_count=2, damping=0.0).apply(scores)
    # row 5: row 1 has left its 3-row window -> a single hit again; row 6: two hits
    np.testing.assert_allclose(out, [0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5])


def test_gate_with_min_count_one_changes_nothing() -> None:
    scores = np.random.default_rng(0).random(100)
    np.testing.assert_allclose(PersistenceGate(0.3, 10, 1).apply(scores), scores)


def test_gate_streaming_equals_batch_through_state() -> None:
    scores = np.random.default_rng(1).random(300) ** 3
    whole = PersistenceGate(0.3, 10, 4).apply(scores)
    first = PersistenceGate(0.3, 10, 4)
    head = first.apply(scores[:137])
    tail = PersistenceGate.from_state(roundtrip(first.to_state())).apply(scores[137:])
    np.testing.assert_allclose(np.concatenate([head, tail]), whole)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 3, "min_count": 4}, "min_count"),
        ({"damping": 1.0}, "damping"),
        ({"level": 0.0}, "level"),
        ({"window": 0}, "window"),
    ],
)
def test_gate_rejects_bad_configuration(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PersistenceGate(**kwargs)


def test_gate_rejects_bad_scores_and_state() -> None:
    with pytest.raises(ValueError, match="scores"):
        PersistenceGate().apply([0.5, 1.5])
    with pytest.raises(ValueError, match="hits"):
        PersistenceGate.from_state({**PersistenceGate().to_state(), "hits": [1, 0]})
    with pytest.raises(ValueError, match="kind"):
        PersistenceGate.from_state(RunSuppressor().to_state())


# ----------------------------------------------------------------------------------------------- escalation


def test_suppressor_escalation_keeps_a_clearly_stronger_alarm_inside_a_run() -> None:
    scores = np.array([0.4, 0.0, 0.45, 1.0, 0.0, 0.9])
    plain = RunSuppressor(level=0.3, cooldown=5, damping=0.0).apply(scores)
    np.testing.assert_allclose(plain, [0.4, 0.0, 0.0, 0.0, 0.0, 0.0])
    escalating = RunSuppressor(level=0.3, cooldown=5, damping=0.0, escalation=0.5).apply(scores)
    # 0.45 < 0.4 + 0.5 (damped, but raises the run's peak to 0.45); 1.0 >= 0.45 + 0.5 is kept and becomes
    # the peak; 0.9 < 1.0 + 0.5 is damped
    np.testing.assert_allclose(escalating, [0.4, 0.0, 0.0, 1.0, 0.0, 0.0])


def test_suppressor_escalation_peak_resets_with_a_new_run() -> None:
    scores = np.array([0.9, 0.0, 0.0, 0.0, 0.4, 0.95])
    out = RunSuppressor(level=0.3, cooldown=2, damping=0.0, escalation=0.5).apply(scores)
    # row 4 starts a new run (4 rows after the last alarm), so 0.95 >= 0.4 + 0.5 escalates
    np.testing.assert_allclose(out, [0.9, 0.0, 0.0, 0.0, 0.4, 0.95])


def test_suppressor_escalation_streaming_equals_batch_through_state() -> None:
    scores = np.random.default_rng(2).random(200) ** 4
    whole = RunSuppressor(0.3, 20, 0.0, 0.3).apply(scores)
    first = RunSuppressor(0.3, 20, 0.0, 0.3)
    head = first.apply(scores[:77])
    tail = RunSuppressor.from_state(roundtrip(first.to_state())).apply(scores[77:])
    np.testing.assert_allclose(np.concatenate([head, tail]), whole)


def test_suppressor_reads_a_state_without_escalation_fields() -> None:
    old = {"kind": "RunSuppressor", "level": 0.5, "cooldown": 5, "damping": 0.5, "since_alarm": 1}
    restored = RunSuppressor.from_state(old)
    assert restored.escalation is None
    np.testing.assert_allclose(restored.apply([0.9, 0.2]), [0.45, 0.2])


def test_suppressor_rejects_bad_escalation() -> None:
    with pytest.raises(ValueError, match="escalation"):
        RunSuppressor(escalation=0.0)


def _signed_likelihood(raw: np.ndarray, warm: int) -> np.ndarray:
    likelihood = AnomalyLikelihood(history=1000, smoothing=10, stats_history=2000, decades=10.0)
    likelihood.warm_up(raw[:warm])
    return likelihood.score(raw[warm:])


@pytest.mark.slow
def test_signed_ranks_flag_one_sided_run_of_ordinary_residuals() -> None:
    rng = np.random.default_rng(0)
    signed = rng.normal(size=3000)
    # 30 rows of ordinary-sized residuals (|r| ~ 1, the 68th percentile of |N(0, 1)|), all below zero
    signed[2500:2530] = -np.abs(rng.normal(1.0, 0.1, size=30))
    down = _signed_likelihood(-signed, 1000)[1500:1530]
    up = _signed_likelihood(signed, 1000)[1500:1530]
    magnitude = _signed_likelihood(np.abs(signed), 1000)[1500:1530]
    assert down.max() >= 0.3  # "very unlikely" (p <= 1e-3) on the downward side
    assert up.max() < 0.3  # the upward side sees nothing unusual
    assert magnitude.max() < 0.3  # nor does the magnitude channel
