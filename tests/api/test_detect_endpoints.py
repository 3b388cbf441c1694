"""Both detect endpoints against a real `tswatch serve`: `/v1/detect` answers exactly `detect_series`, the model
route exactly a local fold of `score_reading` with the same model; quirky readings are input; refusals name
what to change; anomalies are counted; the answer shape is shared."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.anomaly import Detector, DetectorConfig, ScoredPoint, detect_series
from app.registry.factory import open_registry
from app.serving.model_forecasts import ModelForecasts, score_reading
from app.settings import Settings
from app.timestamps import to_naive_utc

from ..serving.test_detection import quirky

pytestmark = pytest.mark.slow
PROBLEM = "application/problem+json"
FIELDS = ("value", "expected", "lower", "upper", "score", "is_anomaly", "direction", "sampling")


def body_series(stamps: list[datetime] | None, values: list[float | None], name: str = "q") -> dict[str, Any]:
    series: dict[str, Any] = {"id": name, "values": values}
    if stamps is not None:
        series["timestamps"] = [stamp.isoformat() for stamp in stamps]
    return series


def assert_same_points(answered: list[dict[str, Any]], expected: list[ScoredPoint]) -> None:
    """Every answered field equals the local point's, floats bit for bit (JSON keeps doubles exactly)."""
    assert len(answered) == len(expected)
    for got, want in zip(answered, expected, strict=True):
        assert got["index"] == want.index
        assert {key: got[key] for key in FIELDS} == {key: getattr(want, key) for key in FIELDS}, want.index
        stamp = got["timestamp"]
        assert (None if stamp is None else to_naive_utc(datetime.fromisoformat(stamp))) == want.timestamp


def test_model_less_detect_is_detect_series_bitwise(tiny_registry_dir: Path, server_factory) -> None:
    server = server_factory(tiny_registry_dir, TSWATCH_TORCH_THREADS="1")
    stamps, values = quirky()
    rng = np.random.default_rng(5)
    sparse = np.where(rng.random(300) < 0.05, rng.exponential(3.0, 300), 0.0).tolist()  # mostly zero
    body = {
        "series": [body_series(stamps, values), body_series(None, sparse, "sparse")],
        "sensitivity": 0.8,
        "learning_points": 50,
    }
    with server.client() as client:
        reply = client.post("/v1/detect", json=body)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        metrics = client.get("/metrics").text
    config = DetectorConfig(learning_points=50)
    assert answer["model"] is None
    assert (answer["sensitivity"], answer["learning_points"]) == (0.8, 50)
    assert answer["alpha"] == pytest.approx(10 ** (3 * 0.8 - 4))
    quirks, zeros = answer["results"]
    assert_same_points(quirks["points"], detect_series(stamps, values, config, 0.8))
    assert_same_points(zeros["points"], detect_series(None, sparse, config, 0.8))
    assert [quirks["points"][k]["sampling"] for k in (150, 201, 251)] == ["missing", "duplicate", "late"]
    assert quirks["anomalies"] == sum(p["is_anomaly"] for p in quirks["points"])
    flagged = quirks["anomalies"] + zeros["anomalies"]
    assert f'tswatch_anomalies_total{{model="",version=""}} {float(flagged)}' in metrics


def test_model_detect_is_a_local_fold_of_score_reading(
    tiny_registry_dir: Path, make_settings: Callable[..., Settings], server_factory
) -> None:
    server = server_factory(tiny_registry_dir, TSWATCH_TORCH_THREADS="1")
    stamps, values = quirky()
    with server.client() as client:
        reply = client.post(
            "/v1/models/tiny/detect?version=2", json={"series": [body_series(stamps, values)]}
        )
        assert reply.status_code == 200, reply.text
        answer = reply.json()
    assert answer["model"] == {"name": "tiny", "version": 2}
    assert answer["learning_points"] == 100 and answer["sensitivity"] == 0.5
    torch.set_num_threads(1)
    registry = open_registry(make_settings(models_dir=tiny_registry_dir))
    forecaster = registry.load(registry.resolve("tiny", version=2)).forecaster
    detector, forecasts = Detector(), ModelForecasts(forecaster)
    expected = [score_reading(detector, forecasts, t, v) for t, v in zip(stamps, values, strict=True)]
    assert_same_points(answer["results"][0]["points"], expected)
    assert expected[-1].expected != detect_series(stamps, values)[-1].expected  # the model's forecasts


def test_refusals_name_what_to_change(tiny_registry_dir: Path, server_factory) -> None:
    server = server_factory(tiny_registry_dir, TSWATCH_MAX_DETECT_POINTS="1000")
    stamps, values = quirky()
    with server.client() as client:
        for path in ("/v1/detect", "/v1/models/tiny/detect"):
            short = client.post(path, json={"series": [body_series(stamps[:60], values[:60], "short")]})
            assert short.status_code == 422 and short.headers["content-type"] == PROBLEM
            problem = short.json()
            assert "'short'" in problem["detail"] and "60" in problem["detail"] and "101" in problem["detail"]
            assert problem["field"] == "series.0.values" and problem["learning_points"] == 100
            lowered = {"series": [body_series(stamps[:60], values[:60])], "learning_points": 20}
            assert client.post(path, json=lowered).status_code == 200

            for bad in (19, 10_001, "50", True):
                reply = client.post(
                    path, json={"series": [body_series(stamps, values)], "learning_points": bad}
                )
                assert reply.status_code == 422 and reply.headers["content-type"] == PROBLEM
                assert [e["field"] for e in reply.json()["errors"]] == ["learning_points"], reply.text

            over = {"series": [body_series(stamps, values, "a"), body_series(stamps, values, "b"),
                               body_series(stamps, values, "c")]}  # fmt: skip
            too_big = client.post(path, json=over)
            assert too_big.status_code == 413 and "1200" in too_big.json()["detail"]
