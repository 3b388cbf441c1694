"""The most recent values a model version stores in its manifest, ready to send to forecast/detect.

The manifest keeps each series' last window (`data.last_values`, ending at `data.last_timestamps`) and, for the
first series, the actual values of the test sample (`report.test_sample`); both are merged into one series with
timestamps rebuilt from the model's frequency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.errors import NotFoundError
from app.registry.manifest import Manifest
from app.registry.store import Registry
from app.timestamps import datetime64_to_iso_z, parse_pd_timestamp


@dataclass(frozen=True)
class RecentData:
    series: str
    series_ids: list[str]  # every series with stored recent values
    frequency: str
    window: int
    horizon: int
    timestamps: list[str]  # ISO 8601 UTC with a Z, oldest first
    values: list[float]


def fetch_recent_data(
    registry: Registry, name: str, version: int | None, series: str | None
) -> tuple[int, RecentData]:
    """(version used, its recent data) for `series` (default: the first); NotFoundError when it has none."""
    info = registry.resolve(name, version)
    manifest = registry.read_manifest(info)
    try:
        return info.version, recent_data(manifest, series)
    except KeyError as error:
        raise NotFoundError(
            f"series {series!r} has no stored recent values in {name} v{info.version}"
        ) from error
    except ValueError as error:
        raise NotFoundError(f"{name} v{info.version}: {error}") from error


def recent_data(manifest: Manifest, series: str | None) -> RecentData:
    """ValueError when the manifest stores no recent values; KeyError when `series` has none."""
    data, spec = manifest.data, manifest.spec
    last_values = data.last_values
    if not last_values:
        raise ValueError("this version's manifest stores no recent values")
    series_id = series if series is not None else next(iter(last_values))
    values = last_values[series_id]
    end = parse_pd_timestamp(data.last_timestamps[series_id])
    stamps = pd.date_range(end=end, periods=len(values), freq=spec.frequency).to_numpy()
    merged = _by_stamp(stamps, values)
    sample = None if manifest.report is None else manifest.report.test_sample
    if sample is not None and sample.series == series_id:
        older = _by_stamp(np.array(sample.timestamps, dtype="datetime64[ns]"), sample.actual)
        merged = {**{key: value for key, value in older.items() if key < min(merged)}, **merged}
    ordered = sorted(merged)
    return RecentData(
        series=series_id,
        series_ids=list(last_values),
        frequency=spec.frequency,
        window=spec.window,
        horizon=spec.horizon,
        timestamps=ordered,
        values=[merged[key] for key in ordered],
    )


def _by_stamp(stamps: np.ndarray, values: list[float]) -> dict[str, float]:
    iso = datetime64_to_iso_z(stamps) or []
    return {stamp: float(value) for stamp, value in zip(iso, values, strict=True)}
