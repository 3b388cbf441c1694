"""StreamState: batch = stream (with state round trips), unscored readings, model binding, and the upgrade of a
version 1 (`StreamScorer`) state written by the previous code (fixtures/stream_scorer_v1.json)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.anomaly import DetectorConfig, detect_series
from app.anomaly.points import ScoredPoint
from app.serving.model_forecasts import ModelForecasts, score_reading
from app.streams.scoring import ServingModel, StreamState
from app.timestamps import from_state_iso

from .helpers import hourly_series, random_forecaster

FIXTURE = Path(__file__).parent / "fixtures" / "stream_scorer_v1.json"
CONFIG = DetectorConfig(learning_points=50)


def quirky_series(points: int, seed: int = 1) -> tuple[list[datetime], list[float | None]]:
    """Hourly values with a spike, a missing value, a duplicate and a late timestamp, and a 5 h gap."""
    stamps, raw = hourly_series(points, seed=seed)
    values: list[float | None] = [float(value) for value in raw]
    values[300] = float(raw[300]) + 30.0
    values[120] = None
    stamps[200] = stamps[199]  # duplicate of the previous reading
    stamps[250] = stamps[240]  # late
    for index in range(400, points):
        stamps[index] += timedelta(hours=5)
    return stamps, values


def round_tripped(stream: StreamState, serving: ServingModel | None) -> StreamState:
    restored = StreamState.from_state(json.loads(json.dumps(stream.to_state())), CONFIG, 0.5)
    restored.bind(serving)
    return restored


def test_stream_equals_batch_bitwise_across_state_round_trips() -> None:
    stamps, values = quirky_series(1200)
    batch = detect_series(stamps, values, CONFIG)
    stream = StreamState.fresh(CONFIG, 0.5)
    answered: list[ScoredPoint] = []
    for index, (stamp, value) in enumerate(zip(stamps, values, strict=True)):
        if index % 97 == 0:
            stream = round_tripped(stream, None)
        answered.append(stream.append(stamp, value)[0])
    assert answered == batch
    assert stream.status().refits == 2  # refits every 500 fed readings after the first fit
    kinds = {answered[i].sampling for i in (120, 200, 250)}
    assert kinds == {"missing", "duplicate", "late"}
    assert all(answered[i].score is None for i in (120, 200, 250))
    assert answered[400].sampling in ("gap", "reanchored")


def test_learning_points_are_unscored_and_never_reach_the_alarm_policy() -> None:
    stamps, values = hourly_series(80, seed=2)
    stream = StreamState.fresh(CONFIG, 0.5)
    for index in range(50):
        value = float(values[index]) + (500.0 if index == 10 else 0.0)  # a spike while learning
        point, events = stream.append(stamps[index], value)
        assert point.score is None and events == [] and point.index == index
        assert stream.status().state == ("learning" if index < 49 else "scoring")
    status = stream.status()
    assert status.points_until_ready == 0 and status.weights_age_points == 0
    assert status.last_refit_at == stamps[49]
    assert stream.policy.open_episode is None
    point, _ = stream.append(stamps[50], float(values[50]))
    assert point.score is not None and stream.status().weights_age_points == 1


def test_model_bound_stream_restores_its_forecasts_and_rebuilds_them_on_a_new_version() -> None:
    stamps, raw = hourly_series(200, seed=4)
    values = [float(value) for value in raw]
    v1 = ServingModel("m", 1, random_forecaster(seed=0))
    detector_only = detect_series(stamps, values, CONFIG)

    straight = StreamState.fresh(CONFIG, 0.5)
    straight.bind(v1)
    expected = [straight.append(s, v)[0] for s, v in zip(stamps, values, strict=True)]
    restored = StreamState.fresh(CONFIG, 0.5)
    answered: list[ScoredPoint] = []
    for index, (stamp, value) in enumerate(zip(stamps, values, strict=True)):
        if index % 37 == 0:
            restored = round_tripped(restored, v1)
        answered.append(restored.append(stamp, value)[0])
    assert answered == expected != detector_only  # the model's forecasts are the expected values
    assert restored.to_state()["forecasts"] == straight.to_state()["forecasts"]

    v2 = ServingModel("m", 2, random_forecaster(seed=1))
    moved = round_tripped(restored, v2)
    assert moved.model_version == 2 and moved.forecasts is not None and moved.forecasts.count == 0
    point, _ = moved.append(stamps[-1] + timedelta(hours=1), 10.0)
    assert point.index == 200 and point.score is not None  # the detector keeps scoring meanwhile


def test_score_reading_is_the_loop_streams_use() -> None:
    stamps, values = quirky_series(500)
    forecaster = random_forecaster()
    stream = StreamState.fresh(CONFIG, 0.5)
    stream.bind(ServingModel("m", 1, forecaster))
    detector = StreamState.fresh(CONFIG, 0.5).detector
    forecasts = ModelForecasts(forecaster)
    for stamp, value in zip(stamps, values, strict=True):
        assert stream.append(stamp, value)[0] == score_reading(detector, forecasts, stamp, value)


def old_state() -> dict[str, Any]:
    state: dict[str, Any] = json.loads(FIXTURE.read_text())
    assert state["kind"] == "StreamScorer" and state["format"] == 1  # written by the pre-issue-14 scorer
    return state


def test_version_1_state_is_upgraded_fed_its_recent_values_with_the_alarm_carried_over() -> None:
    state = old_state()
    recent = [from_state_iso(stamp) for stamp in state["timestamps"]]
    upgraded = StreamState.from_state(state, CONFIG, 0.7)
    assert upgraded.position == state["point_count"] == 80
    assert upgraded.detector.count == len(recent) == 24
    assert upgraded.status().state == "learning" and upgraded.status().points_until_ready == 50 - 24
    episode = upgraded.policy.open_episode
    assert episode is not None and episode.opened_at == state["policy"]["tracker"]["episode"]["opened_at"]

    upgraded.bind(ServingModel("tiny", 1, random_forecaster()))  # window 24: forecasts ready at once
    assert upgraded.forecasts is not None and upgraded.forecasts.count == 24
    assert upgraded.forecasts.expect() is not None
    point, events = upgraded.append(recent[-1] + timedelta(hours=1), 10.0)
    assert point.index == 80 and point.score is None and events == []
    again = StreamState.from_state(json.loads(json.dumps(upgraded.to_state())), CONFIG, 0.7)
    assert again.to_state() == upgraded.to_state()


def test_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Stream state"):
        StreamState.from_state({"kind": "Stream", "version": 99}, CONFIG, 0.5)
    with pytest.raises(ValueError, match="format"):
        StreamState.from_state({**old_state(), "format": 2}, CONFIG, 0.5)
