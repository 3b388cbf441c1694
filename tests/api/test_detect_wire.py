"""The `/detect` wire layer: the chunked answer is exactly one `DetectResponse`; the off-loop body parse refuses
exactly as FastAPI's typed-body parse does; the OpenAPI document still declares the body."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError

from app.anomaly import DetectorConfig
from app.anomaly.points import ScoredPoint
from app.api.body_parsing import parse_like_fastapi
from app.api.detect_wire import DETECT_BODY_OPENAPI, encode_detections, parse_detect_body
from app.api.schemas.common import ModelRef
from app.api.schemas.forecasts import DetectRequest, DetectResponse, SeriesDetection
from app.serving.detection import Detection, DetectOptions, score_series
from app.timestamps import datetime64_to_aware_utc

from ..serving.test_detection import as_input, quirky, series_input
from ..streams.helpers import random_forecaster

JSON = "application/json"
OPTIONS = DetectOptions(1.0, DetectorConfig(learning_points=30))


def unchunked_answer(detection: Detection) -> bytes:
    """Every point validated into one `DetectResponse`."""
    results = []
    for series in detection.series:
        stamps = series.item.timestamps
        aware = None if stamps is None else datetime64_to_aware_utc(stamps)
        points = [
            {**p.__dict__, "timestamp": None if aware is None else aware[p.index]} for p in series.points()
        ]
        results.append(
            SeriesDetection.model_validate(
                {"id": series.item.id, "anomalies": series.anomalies, "points": points}
            )
        )
    options = detection.options
    answer = DetectResponse(
        model=None if detection.name is None else ModelRef(name=detection.name, version=detection.version),
        sensitivity=options.sensitivity,
        alpha=10 ** (3 * options.sensitivity - 4),
        learning_points=options.learning_points,
        results=results,
    )
    return answer.model_dump_json().encode()


@pytest.mark.parametrize("chunk_points", [7, 100, 4096])
def test_chunked_encoding_equals_one_response_model(chunk_points: int) -> None:
    scored = [
        score_series(series_input(250, seed=1, name="a"), OPTIONS, random_forecaster(window=24)),
        score_series(series_input(90, stamps=False, name="b"), OPTIONS),
        score_series(as_input(*quirky(), name="c"), OPTIONS),
    ]
    for detection in (Detection("m", 3, OPTIONS, scored), Detection(None, None, OPTIONS, scored)):
        assert encode_detections(detection, chunk_points) == unchunked_answer(detection)


def test_model_less_answers_carry_a_null_model_and_every_sampling() -> None:
    scored = [score_series(as_input(*quirky(), name="c"), OPTIONS)]
    answer = json.loads(encode_detections(Detection(None, None, OPTIONS, scored), 50))
    assert answer["model"] is None and answer["learning_points"] == 30
    points = answer["results"][0]["points"]
    assert {p["sampling"] for p in points} >= {"regular", "gap", "duplicate", "late", "missing"}
    assert points[150]["value"] is None and points[150]["score"] is None


def test_points_are_the_one_scored_point_type_with_naive_utc_stamps() -> None:
    scored = score_series(series_input(60, seed=2), OPTIONS)
    points = scored.points(20, 40)
    assert [p.index for p in points] == list(range(20, 40))
    assert all(isinstance(p, ScoredPoint) and p.timestamp is not None for p in points)
    assert all(p.timestamp.tzinfo is None for p in points if p.timestamp is not None)
    assert points[0].score is None and points[-1].score is not None  # the learning period has none


def test_the_parse_gives_the_options_and_nulls_as_nan() -> None:
    body = {"series": [{"values": [1.0, None, 3.0], "timestamps": [0, 0, -5]}], "learning_points": 20}
    options, [item] = parse_detect_body(JSON, json.dumps(body).encode())
    assert options == DetectOptions(0.5, DetectorConfig(learning_points=20))
    assert np.isnan(item.values[1]) and item.values[2] == 3.0
    assert parse_detect_body(JSON, json.dumps({"series": body["series"]}).encode())[0] == DetectOptions()


def series_body(**changes: object) -> dict[str, object]:
    return {"series": [{"id": "s", "values": [1.0, 2.0, 3.0], **changes}]}


BODIES = [
    json.dumps(series_body()).encode(),
    json.dumps({**series_body(), "sensitivity": 0.9}).encode(),
    json.dumps({**series_body(), "sensitivity": 1.5}).encode(),
    json.dumps({**series_body(), "learning_points": 19}).encode(),
    json.dumps({**series_body(), "learning_points": 10_001}).encode(),
    json.dumps({**series_body(), "learning_points": "50"}).encode(),
    json.dumps({**series_body(), "learning_points": 50.0}).encode(),
    json.dumps(series_body(values=[1.0, None, 2.0])).encode(),
    json.dumps(series_body(timestamps=[0, 0, -1])).encode(),
    json.dumps(series_body(values=["1.5", 2.0])).encode(),
    json.dumps(series_body(values=[True])).encode(),
    json.dumps({**series_body(), "extra": 1}).encode(),
    b'{"series": [',
    b"[" * 1_000 + b"]" * 1_000,
    b'{"sensitivity": ' + b"1" * 5_000 + b"}",
    b"\xff\xfe",
    b"",
]


@pytest.mark.parametrize("body", BODIES)
def test_the_off_loop_parse_accepts_and_refuses_as_fastapi_does(body: bytes) -> None:
    try:
        request = parse_like_fastapi(DetectRequest, JSON, body)
        expected: object = (request.sensitivity, request.learning_points or DetectorConfig().learning_points)
    except RequestValidationError as error:
        expected = error.errors()
    try:
        options = parse_detect_body(JSON, body)[0]
        got: object = (options.sensitivity, options.learning_points)
    except RequestValidationError as error:
        got = error.errors()
    assert got == expected


def test_a_non_json_content_type_is_refused_as_fastapi_does() -> None:
    body = json.dumps(series_body()).encode()
    with pytest.raises(RequestValidationError) as caught:
        parse_detect_body("text/plain", body)
    assert [e["loc"] for e in caught.value.errors()] == [("body",)]


def test_the_body_is_declared_self_contained() -> None:
    schema = DETECT_BODY_OPENAPI["requestBody"]["content"][JSON]["schema"]
    assert "$ref" not in json.dumps(schema) and "$defs" not in schema
    assert schema["properties"]["series"]["items"]["properties"]["values"]["type"] == "array"


def test_fastapi_does_not_parse_the_detect_body_on_the_event_loop() -> None:
    """The route takes the raw body (parsed in a worker thread by `parse_detect_body`), not a typed parameter
    FastAPI would validate on the event loop: 0.3 s for 200,000 points, stalling concurrent appends."""
    from fastapi.routing import APIRoute

    from app.api.routes.detect import router

    routes = [r for r in router.routes if isinstance(r, APIRoute) and r.path.endswith("/detect")]
    assert {r.path for r in routes} == {"/v1/models/{name}/detect", "/v1/detect"}
    for route in routes:
        assert route.body_field is None
        assert route.openapi_extra is not None and "requestBody" in route.openapi_extra
