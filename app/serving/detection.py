"""Batch anomaly detection, the one flow behind `POST /v1/models/{name}/detect` and `tswatch detect`.

`check_detection` refuses what cannot be scored (too many points, too short, missing timestamps) before any work;
`score_series` (`app.serving.inference`) scores one series. `DetectionService` adds what serving needs around
them: it resolves the model version, runs each series on the pool's detection thread (so a long series never
queues stream scoring or forecasts behind it) and reports anomaly counts through a hook.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.anomaly import CalibrationSet
from app.errors import PayloadTooLargeError
from app.forecasting.forecaster import Forecaster
from app.serving.inference import ScoredSeries, SeriesInput, check_inputs, score_series
from app.serving.pool import ModelPool

AnomalyHook = Callable[[str, int, int], None]
"""(model name, version, anomalies in one series), called once per scored series."""


@dataclass(frozen=True)
class Detection:
    """The scored series of one detection and the model version that scored them."""

    name: str
    version: int
    sensitivity: float
    series: list[ScoredSeries]

    @property
    def points(self) -> int:
        return sum(len(item) for item in self.series)


def check_detect_size(series: list[SeriesInput], limit: int) -> None:
    """Refuse (413) a detect request with more than `limit` points in all, before any work is done."""
    total = sum(len(item.values) for item in series)
    if total > limit:
        raise PayloadTooLargeError(
            f"this request has {total} points in all; detection accepts at most {limit} per request "
            "(TSWATCH_MAX_DETECT_POINTS): split the series into several requests",
            fields={"points": total, "limit": limit},
        )


def check_detection(forecaster: Forecaster, series: list[SeriesInput], limit: int | None = None) -> None:
    """Refuse series that cannot be scored: more than `limit` points in all (413), shorter than one window plus
    the first scored point, or without the timestamps a calendar model needs (422)."""
    if limit is not None:
        check_detect_size(series, limit)
    check_inputs(forecaster, series, minimum_extra=1)


def score_all(
    forecaster: Forecaster, calibration: CalibrationSet, series: list[SeriesInput], sensitivity: float
) -> list[ScoredSeries]:
    """Check, then score every series in the calling thread (the CLI's flow; the service's, minus the pool)."""
    check_detection(forecaster, series)
    return [score_series(forecaster, calibration, item, sensitivity) for item in series]


def _ignore(_name: str, _version: int, _anomalies: int) -> None:
    return None


class DetectionService:
    """Resolve the model version, check the inputs, score each series on the detection thread."""

    def __init__(self, pool: ModelPool, max_points: int, on_anomalies: AnomalyHook = _ignore) -> None:
        self.pool = pool
        self.max_points = max_points
        self.on_anomalies = on_anomalies

    async def detect(
        self,
        name: str,
        series: list[SeriesInput],
        sensitivity: float,
        version: int | None = None,
        alias: str | None = None,
    ) -> Detection:
        served = await self.pool.get(name, version=version, alias=alias)
        forecaster = served.loaded.forecaster
        check_detection(forecaster, series, self.max_points)
        scored: list[ScoredSeries] = []
        for item in series:
            detection = await self.pool.detect(
                score_series, forecaster, served.calibration, item, sensitivity
            )
            self.on_anomalies(served.name, served.version, detection.anomalies)
            scored.append(detection)
        return Detection(served.name, served.version, sensitivity, scored)


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
