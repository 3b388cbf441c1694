"""Future timestamps of a forecast, up to the end of datetime64[ns]."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import InvalidInputError
from app.forecasting.calendar import future_timestamps
from app.serving.inference import SeriesInput, forecast_timestamps

LATE = np.datetime64("2259-12-01T00:00:00", "ns")


@pytest.mark.parametrize(
    ("last", "frequency", "expected"),
    [
        ("2024-01-01", "MS", ["2024-02-01", "2024-03-01", "2024-04-01"]),
        ("2024-01-31", "MS", ["2024-02-01", "2024-03-01", "2024-04-01"]),  # off the anchor: no month skipped
        ("2024-03-01", "B", ["2024-03-04", "2024-03-05", "2024-03-06"]),  # a Friday
        ("2024-03-02", "B", ["2024-03-04", "2024-03-05", "2024-03-06"]),  # a Saturday
        ("2024-03-02", "D", ["2024-03-03", "2024-03-04", "2024-03-05"]),
    ],
)
def test_future_timestamps_follow_the_last_one(last: str, frequency: str, expected: list[str]) -> None:
    stamps = future_timestamps(np.datetime64(f"{last}T00:00:00", "ns"), frequency, 3)
    assert [str(s)[:10] for s in stamps] == expected


@pytest.mark.parametrize(("frequency", "horizon"), [("MS", 36), ("D", 1000), ("YS", 5)])
def test_past_the_representable_range_is_a_value_error(frequency: str, horizon: int) -> None:
    with pytest.raises(ValueError, match="latest representable timestamp"):
        future_timestamps(LATE, frequency, horizon)


def test_serving_answers_it_as_invalid_input_on_the_series() -> None:
    series = SeriesInput(
        "late", np.zeros(3), np.array([LATE - np.timedelta64(1, "D"), LATE], "datetime64[ns]")
    )
    with pytest.raises(InvalidInputError) as caught:
        forecast_timestamps(series, 2, "MS", 36)
    assert caught.value.fields == {"field": "series.2.timestamps"} and "'late'" in caught.value.detail
    assert forecast_timestamps(SeriesInput("none", np.zeros(3), None), 0, "MS", 36) is None
