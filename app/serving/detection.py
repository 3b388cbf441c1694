"""Batch anomaly detection: the one flow behind `POST /v1/models/{name}/detect`, `POST /v1/detect` and
`tswatch detect`.

Each series is scored by a fresh `Detector` folded over it through `score_reading`
(`app.serving.model_forecasts`), exactly as a stream scores the same readings: with a registered model, its
lead-1 forecasts (`ModelForecasts`) give the expected values; without one (model-less detection), the detector's
self-learned forecaster does. `check_detection` refuses what cannot be scored before any work: too many points
(413), a series with no more readings than the learning period, or without the timestamps a calendar model
needs (422). Duplicate, late and missing readings are input: they are answered unscored, never refused.
`DetectionService` adds what serving needs: it resolves the model version, runs each series on the pool's
detection thread (so a long series never queues stream scoring or forecasts behind it) and reports anomaly
counts through a hook.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from app.anomaly import DEFAULT_SENSITIVITY, Detector, DetectorConfig
from app.errors import InvalidInputError, PayloadTooLargeError
from app.forecasting.forecaster import Forecaster
from app.serving.inference import SeriesInput
from app.serving.model_forecasts import ModelForecasts, score_reading
from app.serving.pool import ModelPool
from app.serving.scored_series import ScoredColumns, ScoredSeries
from app.timestamps import datetime64s_to_naive

AnomalyHook = Callable[[str, int | str, int], None]
"""(model name, version, anomalies in one series), called once per scored series; model-less detection reports
an empty name and version."""


@dataclass(frozen=True)
class DetectOptions:
    """What a detect request sets: the sensitivity and the detector's learning period."""

    sensitivity: float = DEFAULT_SENSITIVITY
    config: DetectorConfig = field(default_factory=DetectorConfig)

    @property
    def learning_points(self) -> int:
        return self.config.learning_points


@dataclass(frozen=True)
class Detection:
    """The scored series of one detection and the model version that gave the expected values (None: none)."""

    name: str | None
    version: int | None
    options: DetectOptions
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


def check_series(series: list[SeriesInput], options: DetectOptions, forecaster: Forecaster | None) -> None:
    """Refuse (422) a series the detector would leave unscored, or that a calendar model cannot read."""
    learning = options.learning_points
    for position, item in enumerate(series):
        readings = int(np.count_nonzero(~np.isnan(item.values)))
        if readings <= learning:
            raise InvalidInputError(
                f"series {item.id!r} has {readings} readings (non-null values); the detector learns from the "
                f"first {learning} before it scores, so send at least {learning + 1} or lower learning_points "
                f"(at least 20)",
                fields={
                    "field": f"series.{position}.values",
                    "readings": readings,
                    "minimum": learning + 1,
                    "learning_points": learning,
                },
            )
        if forecaster is not None and forecaster.uses_calendar and item.timestamps is None:
            raise InvalidInputError(
                f"series {item.id!r} has no timestamps; this model uses calendar inputs "
                f"({', '.join(forecaster.spec.calendar_features)}), so send one timestamp per value",
                fields={"field": f"series.{position}.timestamps"},
            )


def check_detection(
    series: list[SeriesInput],
    options: DetectOptions,
    forecaster: Forecaster | None = None,
    limit: int | None = None,
) -> None:
    """`check_detect_size` (when there is a `limit`), then `check_series`."""
    if limit is not None:
        check_detect_size(series, limit)
    check_series(series, options, forecaster)


def readings(item: SeriesInput) -> Iterator[tuple[datetime | None, float | None]]:
    """(naive-UTC timestamp or None, value or None for a missing reading) per point, in order."""
    values = item.values.tolist()
    stamps = [None] * len(values) if item.timestamps is None else datetime64s_to_naive(item.timestamps)
    for stamp, value in zip(stamps, values, strict=True):
        yield stamp, None if value != value else value  # NaN != NaN: a missing reading


def score_series(
    item: SeriesInput, options: DetectOptions, forecaster: Forecaster | None = None, position: int = 0
) -> ScoredSeries:
    """A fresh detector folded over one series (bitwise a stream fed the same readings); `position` names the
    series in a refusal."""
    detector = Detector(options.config, options.sensitivity)
    forecasts = None if forecaster is None else ModelForecasts(forecaster)
    columns = ScoredColumns(item)
    try:
        for index, (stamp, value) in enumerate(readings(item)):
            columns.put(index, score_reading(detector, forecasts, stamp, value))
    except InvalidInputError as error:  # non-finite model forecasts
        raise InvalidInputError(
            f"series {item.id!r}: {error.detail}", fields={"field": f"series.{position}.values"}
        ) from None
    return columns.series()


def score_all(
    series: list[SeriesInput], options: DetectOptions, forecaster: Forecaster | None = None
) -> list[ScoredSeries]:
    """Check, then score every series in the calling thread (the CLI's flow; the service's, minus the pool)."""
    check_detection(series, options, forecaster)
    return [score_series(item, options, forecaster, position) for position, item in enumerate(series)]


def _ignore(_name: str, _version: int | str, _anomalies: int) -> None:
    return None


class DetectionService:
    """Resolve the model version (if any), check the inputs, score each series on the detection thread."""

    def __init__(self, pool: ModelPool, max_points: int, on_anomalies: AnomalyHook = _ignore) -> None:
        self.pool = pool
        self.max_points = max_points
        self.on_anomalies = on_anomalies

    async def detect(
        self,
        name: str | None,
        series: list[SeriesInput],
        options: DetectOptions,
        version: int | None = None,
        alias: str | None = None,
    ) -> Detection:
        """Model-bound detection with model `name` (at `version` / `alias`), model-less with `name` None."""
        forecaster: Forecaster | None = None
        used: int | None = None
        if name is not None:
            served = await self.pool.get(name, version=version, alias=alias)
            forecaster, name, used = served.loaded.forecaster, served.name, served.version
        check_detection(series, options, forecaster, self.max_points)
        scored: list[ScoredSeries] = []
        for position, item in enumerate(series):
            detection = await self.pool.detect(score_series, item, options, forecaster, position)
            self.on_anomalies(name or "", "" if used is None else used, detection.anomalies)
            scored.append(detection)
        return Detection(name, used, options, scored)


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
