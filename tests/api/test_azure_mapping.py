"""The Azure mapping without a server: sensitivity, maxAnomalyRatio, error codes, the grid, imputation, the
learning context and the change-point test."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import numpy as np
import pytest

from app.anomaly.sensitivity import DEFAULT_SENSITIVITY
from app.api.schemas.azure import DetectRequestV10, DetectRequestV11, EntireDetectResponse
from app.azure.changepoint import default_window, level_shifts
from app.azure.context import hampel, mirrored_context
from app.azure.errors import AzureError, code_for_field, code_for_status
from app.azure.grid import Granularity, grid_indexes
from app.azure.series import ImputeMode, SeriesRequest, prepare_series
from app.azure.univariate import detect_entire, to_sensitivity
from app.timestamps import to_naive_utc
from tests.api.azure_series import START, daily_cycle, stamps


def test_sensitivity_maps_azures_default_to_ours() -> None:
    assert to_sensitivity(None) == to_sensitivity(99) == DEFAULT_SENSITIVITY
    assert to_sensitivity(0) == 0.0
    assert to_sensitivity(40) < to_sensitivity(80)


def test_field_and_status_codes() -> None:
    assert code_for_field(("series",), "missing") == "RequiredSeries"
    assert code_for_field(("granularity",), "missing") == "RequiredGranularity"
    assert code_for_field(("granularity",), "enum") == "InvalidGranularity"
    assert code_for_field(("series", 3, "value"), "float_type") == "BadArgument"
    assert code_for_field(("sensitivity",), "less_than_equal") == "InvalidModelArgument"
    assert code_for_field((), "model_attributes_type") == "InvalidJsonFormat"
    assert code_for_status(413) == "InvalidSeries" and code_for_status(500) == "InternalServerError"


def test_request_bodies_read_azures_field_names() -> None:
    body = {"series": [{"timestamp": "2024-03-01T00:00:00Z", "value": 1}] * 12, "granularity": "daily"}
    v10 = DetectRequestV10.model_validate({**body, "maxAnomalyRatio": 0.1, "sensitivity": 80})
    assert (v10.max_anomaly_ratio, v10.sensitivity, v10.granularity) == (0.1, 80, Granularity.DAILY)
    v11 = DetectRequestV11.model_validate({"series": body["series"], "imputeMode": "notFill"})
    assert v11.granularity is Granularity.NONE and v11.impute_mode is ImputeMode.NOT_FILL
    with pytest.raises(AzureError) as caught:
        DetectRequestV10.model_validate({**body, "granularity": "none"}).to_series()
    assert caught.value.code == "InvalidGranularity"


def test_response_uses_azures_field_names() -> None:
    hourly = [to_naive_utc(stamp) for stamp in stamps(30)]
    series = prepare_series(SeriesRequest(hourly, daily_cycle(30), Granularity.HOURLY), 1000)
    dumped = EntireDetectResponse.of(detect_entire(series)).model_dump(by_alias=True)
    assert set(dumped) == {
        "period",
        "expectedValues",
        "upperMargins",
        "lowerMargins",
        "isAnomaly",
        "isNegativeAnomaly",
        "isPositiveAnomaly",
        "severity",
    }


def test_max_anomaly_ratio_keeps_the_highest_scores() -> None:
    values = daily_cycle(48, seed=7)
    values[10] += 30.0
    values[30] -= 30.0
    hourly = [to_naive_utc(stamp) for stamp in stamps(48)]
    series = prepare_series(SeriesRequest(hourly, values, Granularity.HOURLY), 1000)
    free = detect_entire(series, max_anomaly_ratio=0.49)
    flagged = [i for i, flag in enumerate(free.is_anomaly) if flag]
    assert {10, 30} <= set(flagged) and len(flagged) <= 48 * 0.49
    capped = detect_entire(series, max_anomaly_ratio=0.05)  # floor(0.05 * 48) = 2 points
    top = sorted(flagged, key=lambda i: (-free.severity[i], i))[:2]
    assert [i for i, flag in enumerate(capped.is_anomaly) if flag] == sorted(top)
    assert capped.severity[10] > 0 and all(capped.severity[i] == 0 for i in flagged if i not in top)


def test_grid_refuses_an_off_grid_stamp_and_counts_gaps() -> None:
    monthly = [START.replace(tzinfo=None, month=month) for month in (3, 5, 9)]
    assert grid_indexes(monthly, Granularity.MONTHLY, 2) == [0, 1, 3]
    hourly = [to_naive_utc(stamp) for stamp in stamps(3)]
    assert grid_indexes(hourly, Granularity.MINUTELY, 15) == [0, 4, 8]
    with pytest.raises(AzureError, match="index 1"):
        grid_indexes([hourly[0], hourly[0] + timedelta(minutes=50)], Granularity.HOURLY, 1)


@pytest.mark.parametrize(
    ("mode", "fixed", "filled"),
    [
        (ImputeMode.LINEAR, None, [3.0, 4.0]),
        (ImputeMode.PREVIOUS, None, [2.0, 2.0]),
        (ImputeMode.FIXED, 7.5, [7.5, 7.5]),
        (ImputeMode.ZERO, None, [0.0, 0.0]),
    ],
)
def test_imputation_fills_the_grid(mode: ImputeMode, fixed: float | None, filled: list[float]) -> None:
    hourly = [to_naive_utc(stamp) for stamp in stamps(14)]
    values = [float(i) for i in range(14)]
    del hourly[3:5], values[3:5]
    series = prepare_series(SeriesRequest(hourly, values, Granularity.HOURLY, None, None, mode, fixed), 100)
    assert series.values[3:5] == filled and len(series.values) == 14
    assert series.reported == [0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13]


def test_context_lies_before_the_series_on_its_daily_phase_without_its_spike() -> None:
    hourly = [to_naive_utc(stamp) for stamp in stamps(48)]
    values = daily_cycle(48, spike_at=30)
    offsets, context = mirrored_context(hourly, values, 150)
    assert offsets is not None and len(offsets) == len(context) == 150
    assert all(a < b for a, b in itertools.pairwise(offsets)) and offsets[-1] < timedelta(0)
    times = [hourly[0] + offset for offset in offsets]
    clean = hampel(np.asarray(values))
    by_hour: dict[int, set[float]] = {stamp.hour: set() for stamp in hourly}
    for stamp, value in zip(hourly, clean, strict=True):
        by_hour[stamp.hour].add(float(value))
    assert all(value in by_hour[stamp.hour] for stamp, value in zip(times, context, strict=True))
    assert max(context) < values[30] - 5  # the spike was filtered out
    short_times, short = mirrored_context(None, daily_cycle(12), 100)
    assert short_times is None and len(short) == 100


def test_far_apart_stamps_stay_in_the_calendar() -> None:
    centuries = [datetime(1680 + 50 * i, 1, 1) for i in range(12)]
    series = prepare_series(SeriesRequest(centuries, daily_cycle(12), Granularity.YEARLY, 50), 100)
    assert len(detect_entire(series).expected) == 12
    with pytest.raises(AzureError) as caught:
        early = [datetime(1, 1, 1), *centuries[1:]]
        prepare_series(SeriesRequest(early, daily_cycle(12), Granularity.YEARLY, 50), 100)
    assert caught.value.code == "BadArgument"


def test_level_shift_test_tells_a_shift_from_a_spike() -> None:
    errors = [0.1, -0.2, 0.05, 0.0, -0.1] * 4
    errors[5] += 8.0  # a spike: +8 then its return
    errors[6] -= 8.0
    errors[13] += 8.0  # a shift, followed by the detector from the next reading
    flags, confidence = level_shifts(errors, 4, 1e-3)
    assert [i for i, flag in enumerate(flags) if flag] == [13]
    assert confidence[13] > 0.999 and confidence[5] < 0.9 and confidence[0] == 0.0
    assert default_window(Granularity.HOURLY, 40) == 10 and default_window(Granularity.DAILY, 12) == 3
