"""The `/detect` wire layer: the raw request body parsed off the event loop, the `DetectResponse` JSON encoded in
bounded chunks.

A 200,000-point body parsed on the event loop (as FastAPI parses typed route bodies) stalls every concurrent
request for a third of a second or more: `parse_detect_body` runs in a worker thread (`run_blocking`) and
refuses a body with exactly FastAPI's 4xx (`app.api.body_parsing`); `DETECT_BODY_OPENAPI` declares the body.

A 200,000-point answer validated as one `DetectResponse` holds every point as a Python object at once (hundreds
of MB) and keeps the GIL for the whole validation. Here the points are validated and encoded `chunk_points` at
a time and spliced into the envelope: the bytes are exactly `DetectResponse(...).model_dump_json()`, and a large
answer can be streamed piece by piece (`detection_parts`). Both detect routes (`/v1/models/{name}/detect` and the
model-less `/v1/detect`) share this layer: one request schema, one answer shape (`model` is null without one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import numpy as np
from pydantic import TypeAdapter

from app.anomaly import DetectorConfig, sensitivity_to_alpha
from app.api.body_parsing import parse_body, request_body_openapi
from app.api.schemas.common import ModelRef
from app.api.schemas.forecasts import (
    DetectedPoint,
    DetectRequest,
    DetectResponse,
    DetectSeriesPayload,
    SeriesDetection,
)
from app.serving.detection import Detection, DetectOptions
from app.serving.inference import SeriesInput
from app.serving.scored_series import ScoredSeries
from app.timestamps import datetime64_to_aware_utc

ENCODE_CHUNK_POINTS = 4096
_POINTS = TypeAdapter(list[DetectedPoint])
DETECT_BODY_OPENAPI: Final = request_body_openapi(DetectRequest)

ParsedDetect = tuple[DetectOptions, list[SeriesInput]]


def parse_detect_body(content_type: str | None, body: bytes) -> ParsedDetect:
    """The request's options and series as model inputs (blocking: call it in a worker thread). The parsed
    request's per-value Python objects are dropped here, before the scoring."""
    request = parse_body(DetectRequest, content_type, body)
    config = DetectorConfig() if request.learning_points is None else DetectorConfig(request.learning_points)
    return DetectOptions(request.sensitivity, config), detect_inputs(request.series)


def detect_inputs(series: list[DetectSeriesPayload]) -> list[SeriesInput]:
    """Series to score as arrays (a null value becomes NaN: a missing reading)."""
    return [
        SeriesInput(
            id=item.id,
            values=np.asarray(item.values, dtype=np.float64),
            timestamps=None if item.timestamps is None else np.array(item.timestamps, dtype="datetime64[ns]"),
        )
        for item in series
    ]


def encode_detections(detection: Detection, chunk_points: int = ENCODE_CHUNK_POINTS) -> bytes:
    """`DetectResponse` JSON for a detection, as one bytes object."""
    return b"".join(detection_parts(detection, chunk_points))


def detection_parts(detection: Detection, chunk_points: int = ENCODE_CHUNK_POINTS) -> Iterator[bytes]:
    """`DetectResponse` JSON for a detection in consecutive pieces, encoding `chunk_points` points at a time
    (lazily: a streamed answer never holds more than one piece)."""
    options = detection.options
    alpha = sensitivity_to_alpha(options.sensitivity)
    model = None
    if detection.name is not None and detection.version is not None:
        model = ModelRef(name=detection.name, version=detection.version)
    envelope = DetectResponse(
        model=model,
        sensitivity=options.sensitivity,
        alpha=alpha,
        learning_points=options.learning_points,
        results=[],
    ).model_dump_json()
    yield _strip_suffix(envelope.encode(), b"[]}")
    for position, series in enumerate(detection.series):
        head = SeriesDetection(id=series.item.id, anomalies=series.anomalies, points=[]).model_dump_json()
        yield (b"," if position else b"[") + _strip_suffix(head.encode(), b"[]}") + b"["
        for start in range(0, len(series), chunk_points):
            chunk = _POINTS.dump_json(
                _POINTS.validate_python(_point_data(series, start, start + chunk_points))
            )
            yield (b"," if start else b"") + chunk[1:-1]  # without the chunk's brackets
        yield b"]}"
    yield b"]}" if detection.series else b"[]}"


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
            "sampling": p.sampling,
        }
        for p in series.points(start, stop)
    ]
