"""Forecasts beyond the trained horizon through a real `tswatch serve`: answered by recursion, marked, bounded."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

HORIZON = 6  # the tiny model's trained horizon


def hourly(n: int) -> dict[str, object]:
    stamps = pd.date_range("2024-03-01", periods=n, freq="h")
    values = 10.0 + 3.0 * np.sin(2 * np.pi * np.arange(n) / 24)
    return {"id": "s", "values": values.round(3).tolist(), "timestamps": [s.isoformat() for s in stamps]}


def test_a_longer_horizon_is_forecast_recursively_up_to_ten_times_the_trained_one(
    tiny_registry_dir, server_factory
) -> None:
    server = server_factory(tiny_registry_dir)
    series = hourly(48)
    with server.client() as client:
        response = client.post("/v1/models/tiny/forecast", json={"series": [series], "horizon": 3 * HORIZON})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["trained_horizon"] == HORIZON and body["recursive"] is True
        assert body["recursive_from_step"] == HORIZON + 1
        forecast = body["forecasts"][0]
        assert len(forecast["mean"]) == 3 * HORIZON and np.isfinite(forecast["mean"]).all()
        last = datetime.fromisoformat(str(series["timestamps"][-1]))  # type: ignore[index]
        expected = [
            (last + timedelta(hours=k + 1)).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(3 * HORIZON)
        ]
        assert forecast["timestamps"] == expected
        for interval in forecast["intervals"]:
            assert len(interval["lower"]) == len(interval["upper"]) == 3 * HORIZON

        response = client.post("/v1/models/tiny/forecast", json={"series": [series]})
        assert response.status_code == 200, response.text
        assert response.json()["recursive"] is False and response.json()["recursive_from_step"] is None

        response = client.post(
            "/v1/models/tiny/forecast", json={"series": [series], "horizon": 10 * HORIZON + 1}
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert f"exceeds the limit of {10 * HORIZON}" in problem["detail"]
        assert problem["maximum"] == 10 * HORIZON and problem["trained_horizon"] == HORIZON
