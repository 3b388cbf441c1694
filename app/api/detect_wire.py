"""The `/detect` wire layer: the raw request body parsed off the event loop, the `DetectResponse` JSON encoded in
bounded chunks.

A 200,000-point body parsed on the event loop (as FastAPI parses typed route bodies) stalls every concurrent
request for a third of a second or more: `parse_detect_body` runs in a worker thread (`run_blocking`) and
refuses a body with exactly FastAPI's 4xx (`app.api.body_parsing`); `DETECT_BODY_OPENAPI` declares the body.

A 200,000-point answer validated as one `DetectResponse` holds every point as a Python object at once (hundreds
of MB) and keeps the GIL for the whole validation. Here the points are validated and encoded `chunk_points` at
a time and spliced into the envelope: the bytes are exactly `DetectResponse(...).model_dump_json()`, and a large
answer can be streamed piece by piece (`detection_parts`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from pydantic import TypeAdapter

from app.anomaly import sensitivity_to_alpha
from app.api.body_parsing import parse_body, request_body_openapi
from app.api.forecast_answers import to_inputs
from app.api.schemas.common import ModelRef
from app.api.schemas.forecasts import DetectedPoint, DetectRequest, DetectResponse, SeriesDetection
from app.serving.inference import ScoredSeries, SeriesInput
from app.timestamps import datetime64_to_aware_utc

ENCODE_CHUNK_POINTS = 4096
_POINTS = TypeAdapter(list[DetectedPoint])
DETECT_BODY_OPENAPI: Final = request_body_openapi(DetectRequest)


def parse_detect_body(content_type: str | None, body: bytes) -> tuple[float, list[SeriesInput]]:
    """The request's sensitivity and series as model inputs (blocking: call it in a worker thread). The parsed
    request's per-value Python objects are dropped here, before the scoring."""
    request = parse_body(DetectRequest, content_type, body)
    return request.sensitivity, to_inputs(request.series)


def encode_detections(
    name: str,
    version: int,
    sensitivity: float,
    scored: list[ScoredSeries],
    chunk_points: int = ENCODE_CHUNK_POINTS,
) -> bytes:
    """`DetectResponse` JSON for the scored series, as one bytes object."""
    return b"".join(detection_parts(name, version, sensitivity, scored, chunk_points))


def detection_parts(
    name: str,
    version: int,
    sensitivity: float,
    scored: list[ScoredSeries],
    chunk_points: int = ENCODE_CHUNK_POINTS,
) -> Iterator[bytes]:
    """`DetectResponse` JSON for the scored series in consecutive pieces, encoding `chunk_points` points at a
    time (lazily: a streamed answer never holds more than one piece)."""
    envelope = DetectResponse(
        model=ModelRef(name=name, version=version),
        sensitivity=sensitivity,
        alpha=sensitivity_to_alpha(sensitivity),
        results=[],
    ).model_dump_json()
    yield _strip_suffix(envelope.encode(), b"[]}")
    for position, series in enumerate(scored):
        head = SeriesDetection(id=series.item.id, anomalies=series.anomalies, points=[]).model_dump_json()
        yield (b"," if position else b"[") + _strip_suffix(head.encode(), b"[]}") + b"["
        for start in range(0, len(series), chunk_points):
            chunk = _POINTS.dump_json(
                _POINTS.validate_python(_point_data(series, start, start + chunk_points))
            )
            yield (b"," if start else b"") + chunk[1:-1]  # without the chunk's brackets
        yield b"]}"
    yield b"]}" if scored else b"[]}"


def _strip_suffix(data: bytes, suffix: bytes) -> bytes:
    if not data.endswith(suffix):
        raise AssertionError(f"unexpected JSON layout: {data[-40:]!r} does not end with {suffix!r}")
    return data[: -len(suffix)]


def _point_data(series: ScoredSeries, start: int, stop: int) -> list[dict[str, Any]]:
    stamps = series.item.timestamps
    aware = None if stamps is None else datetime64_to_aware_utc(stamps[start:stop])
    return [
        {
            "index": p.index,
            "timestamp": None if aware is None else aware[p.index - start],  # to the second, with a zone
            "value": p.value,
            "expected": p.expected,
            "lower": p.lower,
            "upper": p.upper,
            "score": p.score,
            "is_anomaly": p.is_anomaly,
            "direction": p.direction,
        }
        for p in series.points(start, stop)
    ]
