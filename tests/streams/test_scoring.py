"""StreamScorer: step equivalence with Forecaster.predict, exact state round trips, spikes and episodes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from app.anomaly import CalibrationSet, SpreadResidualScorer
from app.forecasting.calendar import calendar_matrix
from app.forecasting.forecaster import Forecaster
from app.forecasting.quantiles import DEFAULT_QUANTILES
from app.registry.factory import open_registry
from app.settings import Settings
from app.streams.scoring import StreamScorer, _LevelReader, calendar_row

from .helpers import hourly_series, normal_calibrator, random_forecaster


def reference(forecaster: Forecaster, stamps: list, values: np.ndarray, end: int) -> np.ndarray:
    """predict() on the window ending at index `end`: lead-1 quantiles [Q]."""
    window = forecaster.spec.window
    calendar = forecaster.calendar(np.array(stamps[end - window + 1 : end + 1], dtype="datetime64[ns]"))
    return forecaster.predict(values[None, end - window + 1 : end + 1], calendar[None])[0, 0]


@pytest.mark.slow
@pytest.mark.parametrize(("patch_len", "cell"), [(1, "gru"), (1, "lstm"), (2, "gru"), (4, "lstm")])
def test_lead_one_equals_predict_after_anchor_and_stays_close(patch_len: int, cell: str) -> None:
    forecaster = random_forecaster(window=24, patch_len=patch_len, cell=cell)
    scorer = StreamScorer(forecaster, normal_calibrator(), 0.5)
    stamps, values = hourly_series(24 * 6)
    checked_anchor = 0
    for index, (stamp, value) in enumerate(zip(stamps, values, strict=True)):
        scorer.append(stamp, float(value))
        if scorer.pending is None:
            assert index < 23
            continue
        expected = reference(forecaster, stamps, values, index)
        if scorer.since_anchor == 0:
            np.testing.assert_allclose(scorer.pending, expected, rtol=0, atol=1e-5)
            checked_anchor += 1
        else:  # stale anchor + longer context: close, not equal
            assert np.abs(scorer.pending - expected).max() < 0.5
    assert checked_anchor == 6  # anchors at points 24, 48, ..., 144


def test_first_window_only_fills_history() -> None:
    forecaster = random_forecaster()
    scorer = StreamScorer(forecaster, normal_calibrator(), 0.5)
    stamps, values = hourly_series(30)
    scored = [scorer.append(s, float(v))[0] for s, v in zip(stamps, values, strict=True)]
    assert all(point.score is None and point.expected is None for point in scored[:24])
    assert all(point.score is not None and point.expected is not None for point in scored[24:])
    assert [point.index for point in scored] == list(range(30))


@pytest.mark.slow
@pytest.mark.parametrize(("patch_len", "cell"), [(1, "gru"), (2, "lstm")])
def test_state_round_trip_gives_identical_outputs(patch_len: int, cell: str) -> None:
    forecaster = random_forecaster(patch_len=patch_len, cell=cell)
    calibrator = normal_calibrator()
    stamps, values = hourly_series(200)
    values[150] += 30.0  # an episode in the continued part
    live = StreamScorer(forecaster, calibrator, 0.7, "m", 1)
    for stamp, value in zip(stamps[:101], values[:101], strict=True):
        live.append(stamp, float(value))
    snapshot = json.loads(json.dumps(live.to_state()))
    restored = StreamScorer.from_state(snapshot, forecaster, calibrator, "m", 1)
    assert restored.to_state() == live.to_state()
    for stamp, value in zip(stamps[101:], values[101:], strict=True):
        assert live.append(stamp, float(value)) == restored.append(stamp, float(value))
    assert live.to_state() == restored.to_state()


@pytest.fixture(scope="module")
def tiny(tiny_models_dir: Path) -> tuple[Forecaster, CalibrationSet]:
    registry = open_registry(Settings(models_dir=tiny_models_dir))
    loaded = registry.load(registry.resolve("tiny"))
    return loaded.forecaster, loaded.manifest.calibration()


@pytest.mark.slow
@pytest.mark.parametrize(("jump", "direction"), [(60.0, "up"), (-60.0, "down")])
def test_spike_is_flagged_with_direction_and_episode_resolves(tiny, jump: float, direction: str) -> None:
    forecaster, calibration = tiny
    scorer = StreamScorer(forecaster, calibration.for_series("sensor"), 0.7, "tiny", 1)
    stamps, values = hourly_series(120, seed=3)
    values[80] += jump
    scored, events = [], []
    for stamp, value in zip(stamps, values, strict=True):
        point, point_events = scorer.append(stamp, float(value))
        scored.append(point)
        events.extend((point.index, event) for event in point_events)
    spike = scored[80]
    assert spike.is_anomaly and spike.direction == direction and spike.score > 0.98
    opened = [(index, event) for index, event in events if event.kind == "opened"]
    resolved = [(index, event) for index, event in events if event.kind == "resolved"]
    assert any(index == 80 for index, _ in opened)
    episode = next(event.episode for index, event in opened if index == 80)
    assert episode.direction == direction and episode.peak.timestamp == stamps[80].isoformat()
    closing = [event.episode for index, event in resolved if index > 80]
    assert closing and closing[0].opened_at == stamps[80].isoformat()
    assert scorer.policy.open_episode is None
    normal = [p for p in scored[24:] if abs(p.index - 80) > 3]
    assert sum(p.is_anomaly for p in normal) <= 4  # about 2 in 100 expected at sensitivity 0.7


@pytest.mark.slow
def test_trained_model_stays_close_to_predict_between_anchors(tiny) -> None:
    forecaster, calibration = tiny
    scorer = StreamScorer(forecaster, calibration.global_calibrator, 0.5)
    stamps, values = hourly_series(24 * 8, seed=5)
    for index, (stamp, value) in enumerate(zip(stamps, values, strict=True)):
        scorer.append(stamp, float(value))
        if scorer.pending is not None:
            expected = reference(forecaster, stamps, values, index)
            width = expected[-1] - expected[0]
            assert np.abs(scorer.pending - expected).max() < 0.25 * width


def test_new_model_version_rebuilds_from_history() -> None:
    old, new = random_forecaster(seed=0), random_forecaster(seed=1)
    calibrator = normal_calibrator()
    stamps, values = hourly_series(60)
    scorer = StreamScorer(old, calibrator, 0.5, "m", 1)
    for stamp, value in zip(stamps, values, strict=True):
        scorer.append(stamp, float(value))
    rebuilt = StreamScorer.from_state(scorer.to_state(), new, calibrator, "m", 2)
    assert rebuilt.model_version == 2 and rebuilt.point_count == 60 and rebuilt.since_anchor == 0
    np.testing.assert_allclose(rebuilt.pending, reference(new, stamps, values, 59), atol=1e-5)
    point, _ = rebuilt.append(stamps[-1] + timedelta(hours=1), 10.0)
    assert point.score is not None and point.index == 60


def test_calendar_row_is_bitwise_calendar_matrix() -> None:
    rng = np.random.default_rng(0)
    features = ("hour_of_day", "day_of_week", "day_of_year", "month_of_year")
    seconds = rng.integers(0, 40 * 365 * 86_400, 5000)
    stamps = [datetime(1990, 1, 1) + timedelta(seconds=int(s), microseconds=int(s % 997)) for s in seconds]
    expected = calendar_matrix(np.array(stamps, dtype="datetime64[ns]"), list(features))  # [N, 8]
    rows = np.stack([calendar_row(stamp, features) for stamp in stamps])
    assert rows.dtype == np.float32 and np.array_equal(rows.view(np.uint32), expected.view(np.uint32))
    assert calendar_row(stamps[0], ()).shape == (0,)


@pytest.mark.parametrize("levels", [DEFAULT_QUANTILES, (0.05, 0.25, 0.5, 0.75, 0.95), (0.02, 0.3, 0.5, 0.98)])
def test_scalar_residual_equals_spread_residual_scorer(levels: tuple[float, ...]) -> None:
    scorer = SpreadResidualScorer()
    reader = _LevelReader(scorer, levels)
    rng = np.random.default_rng(1)
    for _ in range(2000):
        quantiles = np.sort(rng.normal(0, 1, len(levels)) * rng.choice([1e-9, 1.0, 1e4]))
        value = float(rng.normal(quantiles[len(levels) // 2], rng.choice([0.0, 0.5, 5.0])))
        batch = scorer.score(np.array([value]), quantiles[None, :], np.asarray(levels))
        magnitude, signed, expected, lower, upper = reader.residual(value, quantiles)
        assert (magnitude, signed, expected, lower, upper) == (
            float(batch.magnitude[0]),
            float(batch.signed[0]),
            float(batch.expected[0]),
            float(batch.lower[0]),
            float(batch.upper[0]),
        )
        assert ("up" if signed >= 0 else "down") == batch.direction[0]
