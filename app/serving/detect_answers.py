"""The detection answer: scored series in, the encoded `DetectResponse` JSON out, built in bounded chunks.

A 200,000-point answer validated as one `DetectResponse` holds every point as a Python object at once (hundreds
of MB) and keeps the GIL for the whole validation. Here the points are validated and encoded `chunk_points` at
a time and spliced into the envelope: the bytes are exactly `DetectResponse(...).model_dump_json()`, and a large
answer can be streamed piece by piece (`detection_parts`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Iterator
from typing import Any

from pydantic import TypeAdapter

from app.anomaly import sensitivity_to_alpha
from app.api.schemas.common import ModelRef
from app.api.schemas.forecasts import DetectedPoint, DetectResponse, SeriesDetection
from app.errors import PayloadTooLargeError
from app.serving.inference import ScoredSeries, SeriesInput
from app.timestamps import datetime64_to_aware_utc

logger = logging.getLogger("tswatch.serving")

ENCODE_CHUNK_POINTS = 4096
_POINTS = TypeAdapter(list[DetectedPoint])


def check_detect_size(series: list[SeriesInput], limit: int) -> None:
    """Refuse (413) a detect request with more than `limit` points in all, before any work is done."""
    total = sum(len(item.values) for item in series)
    if total > limit:
        raise PayloadTooLargeError(
            f"this request has {total} points in all; detection accepts at most {limit} per request "
            "(TSWATCH_MAX_DETECT_POINTS): split the series into several requests",
            fields={"points": total, "limit": limit},
        )


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
            "timestamp": None if aware is None else aware[p.index - start],
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


def _load_malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> None:
    """Give freed heap pages back to the OS (glibc `malloc_trim`): after a large detection, the allocator would
    otherwise keep the peak resident. A no-op where glibc is not the allocator."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
