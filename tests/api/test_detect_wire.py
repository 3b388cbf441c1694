"""The `/detect` wire layer: the chunked answer is exactly one `DetectResponse`; the off-loop body parse refuses
exactly as FastAPI's typed-body parse does; the OpenAPI document still declares the body."""

from __future__ import annotations

import json

import pytest
from fastapi.exceptions import RequestValidationError

from app.anomaly import CalibrationSet
from app.anomaly.points import ScoredPoint
from app.api.body_parsing import parse_like_fastapi
from app.api.detect_wire import DETECT_BODY_OPENAPI, encode_detections, parse_detect_body
from app.api.schemas.common import ModelRef
from app.api.schemas.forecasts import DetectRequest, DetectResponse, SeriesDetection
from app.serving.inference import score_series
from app.timestamps import datetime64_to_aware_utc

from ..serving.test_detect_chunks import series_input
from ..streams.helpers import normal_calibrator, random_forecaster

JSON = "application/json"


def unchunked_answer(scored: list, sensitivity: float) -> bytes:
    """Today's encoding: every point validated into one `DetectResponse`."""
    results = []
    for series in scored:
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
    answer = DetectResponse(
        model=ModelRef(name="m", version=3),
        sensitivity=sensitivity,
        alpha=10 ** (3 * sensitivity - 4),
        results=results,
    )
    return answer.model_dump_json().encode()


@pytest.mark.parametrize("chunk_points", [7, 100, 4096])
def test_chunked_encoding_equals_one_response_model(chunk_points: int) -> None:
    forecaster, calibration = random_forecaster(window=24), CalibrationSet(normal_calibrator())
    scored = [
        score_series(forecaster, calibration, series_input(250, seed=1, name="a"), 1.0),
        score_series(
            random_forecaster(window=24, calendar=False),
            calibration,
            series_input(90, stamps=False, name="b"),
            1.0,
        ),
    ]
    assert encode_detections("m", 3, 1.0, scored, chunk_points) == unchunked_answer(scored, 1.0)


def test_points_are_the_one_scored_point_type_with_naive_utc_stamps() -> None:
    forecaster, calibration = random_forecaster(window=24), CalibrationSet(normal_calibrator())
    scored = score_series(forecaster, calibration, series_input(60, seed=2), 0.5)
    points = scored.points(20, 30)
    assert [p.index for p in points] == list(range(20, 30))
    assert all(isinstance(p, ScoredPoint) and p.timestamp is not None for p in points)
    assert all(p.timestamp.tzinfo is None for p in points if p.timestamp is not None)
    assert points[0].score is None and points[-1].score is not None  # the first `window` points have none


def series_body(**changes: object) -> dict[str, object]:
    return {"series": [{"id": "s", "values": [1.0, 2.0, 3.0], **changes}]}


BODIES = [
    json.dumps(series_body()).encode(),
    json.dumps({**series_body(), "sensitivity": 0.9}).encode(),
    json.dumps({**series_body(), "sensitivity": 1.5}).encode(),
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
        expected: object = parse_like_fastapi(DetectRequest, JSON, body).sensitivity
    except RequestValidationError as error:
        expected = error.errors()
    try:
        got: object = parse_detect_body(JSON, body)[0]
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

    from app.api.routes.forecasts import router

    (route,) = [r for r in router.routes if isinstance(r, APIRoute) and r.path.endswith("/detect")]
    assert route.body_field is None
    assert route.openapi_extra is not None and "requestBody" in route.openapi_extra
