"""Interval calibration kept current from actuals: the server side of `app.forecasting.online_calibration`.

Feeding actuals (`OnlineIntervals.feed`, `POST /v1/models/{name}/actuals`). A client sends a series' new values
with their timestamps, in order. Per (model, version, series id) the server keeps the last window + horizon - 1
actuals, so it can recompute exactly the forecasts the new values resolve: the forecast from every origin whose
horizon reaches a new value, made by the same model version from the same window, i.e. what `/forecast` answered
(or would have answered) at that origin. The actuals update the series' `OnlineCalibrator` in order, each judging
the forecasts that reach it with the factors they were issued with. Model-bound streams feed their stored readings
the same way (`feed_streams`, the stream id being the series id). Values not newer than the last stored actual were seen before and are ignored (so a retry or
an overlapping batch counts nothing twice). Missing timestamps between actuals are not filled in: a model reads
its windows as consecutive readings. The forecasts from the last H origins are kept with the state, so a feed of
k new actuals runs the network from k new origins only (not k + H - 1: a model-bound stream feeds every append,
and recomputing the older origins was most of its cost); a state without them (version 1) recomputes them once.

Answers (`OnlineIntervals.annotate`). A forecast for a series id with a calibration of that model version has its
intervals corrected and says so: `"calibration": {"intervals": "online", "observations": n}` (n actuals folded
in); otherwise `{"intervals": "training", "observations": 0}`, the conformal calibration of training.

Storage: one `interval_calibrations` row per key, versioned JSON of fixed size; at most `max_series` rows per model
version (the least recently updated go first). Answers read the rows through a small cache that trusts an entry
for `cache_seconds`: another replica's feeds show in this replica's answers within that time. Feeds of one key are
serialised within a process; two replicas feeding the same series at the same moment may lose one's update.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic_core import from_json, to_json
from sqlalchemy import delete, func, select

from app.concurrency import run_blocking
from app.errors import InvalidInputError
from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.online_calibration import OnlineCalibrator
from app.forecasting.quantiles import available_levels, interval_interpolation
from app.serving.inference import SeriesInput
from app.serving.model_forecasts import UNFED
from app.serving.pool import ModelPool, ServedModel
from app.storage.database import Database
from app.storage.tables.intervals import IntervalCalibrationRow
from app.streams.locks import LockRegistry
from app.streams.service import StagedAppend
from app.timestamps import utc_now

logger = logging.getLogger("tswatch.intervals")

STATE_KIND = "OnlineIntervals"
STATE_VERSION = 2
UPGRADABLE_VERSIONS = (1, 2)  # version 1 has no `forecasts`: they are recomputed on its next feed
DEFAULT_MAX_SERIES = 2_000  # calibrated series per model version (a row holds O(H^2 L) floats)
DEFAULT_CACHE_SECONDS = 2.0
MAX_CACHED = 10_000


@dataclass
class SeriesCalibration:
    """One key's state: the calibrator, the recent actuals (values float64, timestamps int64 ns) and the forecasts
    from the last origins ([M, H, Q] float32, M <= H; row -1 is the forecast from the last actual)."""

    calibrator: OnlineCalibrator
    values: np.ndarray  # [R]
    stamps: np.ndarray  # [R] int64 nanoseconds since the epoch (naive UTC)
    forecasts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), dtype=np.float32))  # [M, H, Q]

    @classmethod
    def fresh(cls, forecaster: Forecaster) -> SeriesCalibration:
        levels = tuple(available_levels(forecaster.spec.quantiles))
        return cls(
            OnlineCalibrator(forecaster.spec.horizon, levels), np.zeros(0), np.zeros(0, dtype=np.int64)
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": STATE_KIND,
                "version": STATE_VERSION,
                "calibrator": self.calibrator.to_state(),
                "values": self.values.tolist(),
                "timestamps": self.stamps.tolist(),
                "forecasts": {
                    "shape": list(self.forecasts.shape),
                    "data": base64.b64encode(self.forecasts.astype("<f4").tobytes()).decode("ascii"),
                },
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SeriesCalibration:
        state = json.loads(text)
        if state.get("kind") != STATE_KIND or state.get("version") not in UPGRADABLE_VERSIONS:
            raise ValueError(
                f"not a {STATE_KIND} state of version {STATE_VERSION}; got kind {state.get('kind')!r}, "
                f"version {state.get('version')!r}"
            )
        calibration = cls(
            OnlineCalibrator.from_state(state["calibrator"]),
            np.array(state["values"], dtype=np.float64),
            np.array(state["timestamps"], dtype=np.int64),
        )
        if "forecasts" in state:  # version 2
            packed = np.frombuffer(base64.b64decode(state["forecasts"]["data"]), dtype="<f4")
            calibration.forecasts = packed.astype(np.float32).reshape(state["forecasts"]["shape"])
        return calibration


@dataclass(frozen=True)
class FedSeries:
    """What one series' actuals did."""

    id: str
    accepted: int  # new actuals stored
    ignored: int  # not newer than the last stored actual
    resolved: int  # (forecast step, actual) pairs folded into the calibration
    observations: int  # actuals folded in so far


def fold(
    forecaster: Forecaster, state: SeriesCalibration, item: SeriesInput
) -> tuple[SeriesCalibration, FedSeries]:
    """`state` after the actuals of `item` (timestamps required): see the module docstring."""
    spec = forecaster.spec
    assert item.timestamps is not None
    stamps = item.timestamps.astype("datetime64[ns]").astype(np.int64)
    newer = stamps > state.stamps[-1] if len(state.stamps) else np.ones(len(stamps), dtype=bool)
    values = np.concatenate([state.values, item.values[newer]])  # [N]
    times = np.concatenate([state.stamps, stamps[newer]])  # [N]
    old = len(state.values)
    first = max(spec.window - 1, old - spec.horizon)  # the oldest origin whose horizon reaches a new actual
    origins = max(len(values) - 1 - first, 0) if len(values) > old else 0  # origins first .. N - 2
    forecasts = state.forecasts
    if len(values) > old and len(values) >= spec.window:
        forecasts = _forecasts_since(forecaster, state, values, times, first)  # origins first .. N - 1
    quantiles = forecasts[:-1] if origins else _no_forecasts(spec)  # origins first .. N - 2: [E, H, Q]
    levels = state.calibrator.levels
    lower, upper, weight = interval_interpolation(spec.quantiles, levels)  # [2L] each
    bounds = quantiles[..., lower] * (1.0 - weight) + quantiles[..., upper] * weight  # [E, H, 2L]
    state.calibrator.update(
        quantiles[..., spec.median_index], bounds[..., 0::2], bounds[..., 1::2], values[old:]
    )
    targets = np.arange(first, first + origins)[:, None] + np.arange(1, spec.horizon + 1)[None]  # [E, H]
    resolved = int(((targets >= old) & (targets < len(values))).sum())
    keep = spec.window + spec.horizon - 1
    updated = SeriesCalibration(state.calibrator, values[-keep:], times[-keep:], forecasts[-spec.horizon :])
    accepted = int(newer.sum())
    fed = FedSeries(item.id, accepted, len(stamps) - accepted, resolved, state.calibrator.observations)
    return updated, fed


def _forecasts_since(
    forecaster: Forecaster, state: SeriesCalibration, values: np.ndarray, times: np.ndarray, first: int
) -> np.ndarray:
    """The forecasts from origins `first` .. N - 1 ([N - first, H, Q]): those from before the new actuals come
    from the state when it holds them all, the others are made now (the network's only work in a feed)."""
    spec, old = forecaster.spec, len(state.values)
    cached = state.forecasts
    held = cached.ndim == 3 and cached.shape[1:] == (spec.horizon, len(spec.quantiles))
    start = old if held and old - len(cached) <= first else first  # the first origin to forecast now
    start = max(start, spec.window - 1)
    made = forecaster.predict_rolling(
        values[start - spec.window + 1 :].astype(np.float32),
        times[start - spec.window + 1 :].astype("datetime64[ns]"),
    )  # [N - start, H, Q]
    if start == first:
        return made
    return np.concatenate([cached[len(cached) - (old - first) :], made])  # origins first .. old - 1, then new


def _no_forecasts(spec: ForecasterSpec) -> np.ndarray:
    return np.zeros((0, spec.horizon, len(spec.quantiles)), dtype=np.float32)  # [0, H, Q]


def widen_answer(body: bytes, calibrations: dict[str, OnlineCalibrator]) -> bytes:
    """A `/forecast` answer with the intervals of calibrated series corrected and labelled."""
    answer = from_json(body)
    for forecast in answer["forecasts"]:
        calibrator = calibrations.get(forecast["id"])
        if calibrator is None or calibrator.observations == 0 or not forecast["intervals"]:
            continue
        intervals = forecast["intervals"]
        median = np.array(forecast["mean"], dtype=np.float64)  # [S]
        lower, upper = calibrator.widen(
            median,
            np.array([interval["lower"] for interval in intervals], dtype=np.float64),  # [K, S]
            np.array([interval["upper"] for interval in intervals], dtype=np.float64),
            [float(interval["level"]) for interval in intervals],
        )
        for interval, low, high in zip(intervals, lower.tolist(), upper.tolist(), strict=True):
            interval["lower"], interval["upper"] = low, high
        forecast["calibration"] = {"intervals": "online", "observations": calibrator.observations}
    return to_json(answer)


class OnlineIntervals:
    """Feeds actuals into per-series calibrations and applies them to forecast answers (module docstring)."""

    def __init__(
        self,
        database: Database,
        pool: ModelPool,
        max_series: int = DEFAULT_MAX_SERIES,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
    ) -> None:
        self.database = database
        self.pool = pool
        self.max_series = max_series
        self.cache_seconds = cache_seconds
        self._locks = LockRegistry()
        # (model, version, series id) -> (read at, calibrator or None when the key has none)
        self._cache: OrderedDict[tuple[str, int, str], tuple[float, OnlineCalibrator | None]] = OrderedDict()
        self._versions: dict[
            tuple[str, int], tuple[float, bool]
        ] = {}  # (model, version) -> (read at, any rows)

    # ------------------------------------------------------------------ feeding
    async def feed(self, served: ServedModel, series: Sequence[SeriesInput]) -> list[FedSeries]:
        """Fold each series' actuals (timestamps required) into its calibration and store it."""
        for position, item in enumerate(series):
            if item.timestamps is None:
                raise InvalidInputError(
                    f"series {item.id!r} has no timestamps; actuals are matched to the forecasts they resolve "
                    "by time, so send one timestamp per value",
                    fields={"field": f"series.{position}.timestamps"},
                )
        results = []
        for item in series:
            key = f"{served.name}\x00{served.version}\x00{item.id}"
            async with self._locks.hold(key):
                stored = await run_blocking(self._read, served.name, served.version, item.id)
                state = stored or SeriesCalibration.fresh(served.loaded.forecaster)
                state, fed = await self.pool.infer(fold, served.loaded.forecaster, state, item)
                await run_blocking(self._write, served.name, served.version, item.id, state)
                self._remember((served.name, served.version, item.id), state.calibrator)
                self._versions[(served.name, served.version)] = (time.monotonic(), True)
                results.append(fed)
        return results

    async def feed_streams(self, appended: Sequence[StagedAppend]) -> None:
        """Model-bound streams' stored readings are actuals of the stream id's series (`StreamService.after_store`):
        each reading resolves the forecasts made from the readings before it. Never raises: the points are stored
        already, so a failure here is logged and the calibration misses those readings."""
        for item in appended:
            readings = [
                (point.timestamp, point.value)
                for point in item.points
                if point.value is not None and point.timestamp is not None and point.sampling not in UNFED
            ]
            if item.model_name is None or item.model_version is None or not readings:
                continue
            stamps, values = zip(*readings, strict=True)
            actuals = SeriesInput(
                item.stream_id, np.array(values, dtype=np.float64), np.array(stamps, dtype="datetime64[ns]")
            )
            try:
                served = await self.pool.get(item.model_name, version=item.model_version)
                await self.feed(served, [actuals])
            except Exception:
                logger.exception("online interval calibration of stream %r failed", item.stream_id)

    def _read(self, model: str, version: int, series_id: str) -> SeriesCalibration | None:
        with self.database.session() as session:
            row = session.get(IntervalCalibrationRow, (model, version, series_id))
            return None if row is None else SeriesCalibration.from_json(row.state)

    def _write(self, model: str, version: int, series_id: str, state: SeriesCalibration) -> None:
        with self.database.session() as session:
            row = session.get(IntervalCalibrationRow, (model, version, series_id))
            if row is None:
                self._make_room(session, model, version)
                row = IntervalCalibrationRow(model_name=model, version=version, series_id=series_id)
                session.add(row)
            row.state = state.to_json()
            row.observations = state.calibrator.observations
            row.updated_at = utc_now()

    def _make_room(self, session: Any, model: str, version: int) -> None:
        """Delete the least recently updated rows of the model version beyond `max_series - 1`."""
        of_version = (IntervalCalibrationRow.model_name == model) & (
            IntervalCalibrationRow.version == version
        )
        count = session.scalar(select(func.count()).select_from(IntervalCalibrationRow).where(of_version))
        excess = int(count or 0) - self.max_series + 1
        if excess <= 0:
            return
        oldest = session.scalars(
            select(IntervalCalibrationRow.series_id)
            .where(of_version)
            .order_by(IntervalCalibrationRow.updated_at)
            .limit(excess)
        ).all()
        session.execute(
            delete(IntervalCalibrationRow).where(of_version, IntervalCalibrationRow.series_id.in_(oldest))
        )
        for series_id in oldest:
            self._cache.pop((model, version, series_id), None)

    # ------------------------------------------------------------------ answering
    async def annotate(self, name: str, version: int, body: bytes) -> bytes:
        """`body` (a `/forecast` answer) with the online calibration of its series applied, where there is one."""
        if not await self._has_any(name, version):
            return body
        ids = [forecast["id"] for forecast in from_json(body)["forecasts"]]
        calibrations = await self._calibrators(name, version, ids)
        if not calibrations:
            return body
        return widen_answer(body, calibrations)

    async def _has_any(self, name: str, version: int) -> bool:
        now = time.monotonic()
        known = self._versions.get((name, version))
        if known is not None and now - known[0] < self.cache_seconds:
            return known[1]
        present = await run_blocking(self._exists, name, version)
        self._versions[(name, version)] = (now, present)
        return present

    def _exists(self, name: str, version: int) -> bool:
        with self.database.session() as session:
            found = session.scalar(
                select(IntervalCalibrationRow.series_id)
                .where(IntervalCalibrationRow.model_name == name, IntervalCalibrationRow.version == version)
                .limit(1)
            )
            return found is not None

    async def _calibrators(self, name: str, version: int, ids: list[str]) -> dict[str, OnlineCalibrator]:
        now = time.monotonic()
        found: dict[str, OnlineCalibrator] = {}
        missing = []
        for series_id in ids:
            entry = self._cache.get((name, version, series_id))
            if entry is None or now - entry[0] >= self.cache_seconds:
                missing.append(series_id)
            elif entry[1] is not None:
                found[series_id] = entry[1]
        if missing:
            loaded = await run_blocking(self._load_many, name, version, missing)
            for series_id in missing:
                calibrator = loaded.get(series_id)
                self._remember((name, version, series_id), calibrator)
                if calibrator is not None:
                    found[series_id] = calibrator
        return found

    def _load_many(self, name: str, version: int, ids: list[str]) -> dict[str, OnlineCalibrator]:
        with self.database.session() as session:
            rows = session.scalars(
                select(IntervalCalibrationRow).where(
                    IntervalCalibrationRow.model_name == name,
                    IntervalCalibrationRow.version == version,
                    IntervalCalibrationRow.series_id.in_(ids),
                )
            ).all()
            return {row.series_id: SeriesCalibration.from_json(row.state).calibrator for row in rows}

    def _remember(self, key: tuple[str, int, str], calibrator: OnlineCalibrator | None) -> None:
        self._cache[key] = (time.monotonic(), calibrator)
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
