"""The REST endpoints against a real `tswatch serve` process: forecasts, detection, registry, health, metrics."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

WINDOW, HORIZON = 24, 6
LEARNING = 100  # the detector's default learning period: no score before it
HOUR = timedelta(hours=1)


def hourly(n: int, series_id: str = "s", start: str = "2024-03-01", seed: int = 0) -> dict:
    """A series shaped like the training data: daily cycle plus noise, naive ISO timestamps (UTC)."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(start, periods=n, freq="h")
    values = 10.0 + 3.0 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 0.3, n)
    return {"id": series_id, "values": values.tolist(), "timestamps": [s.isoformat() for s in stamps]}


def utc(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def check_forecast(forecast: dict, series: dict, horizon: int, levels: list[float]) -> None:
    """Shape, timestamps continuing the input hourly, finite numbers, nested intervals around the median."""
    assert forecast["id"] == series["id"]
    mean = np.array(forecast["mean"])
    assert mean.shape == (horizon,) and np.isfinite(mean).all()
    last = utc(series["timestamps"][-1])
    assert [utc(s) for s in forecast["timestamps"]] == [last + (k + 1) * HOUR for k in range(horizon)]
    assert all(s.endswith("Z") for s in forecast["timestamps"])
    assert [interval["level"] for interval in forecast["intervals"]] == levels
    previous = None
    for interval in sorted(forecast["intervals"], key=lambda i: i["level"]):
        lower, upper = np.array(interval["lower"]), np.array(interval["upper"])
        assert lower.shape == upper.shape == (horizon,)
        assert np.isfinite(lower).all() and np.isfinite(upper).all()
        assert (lower <= mean + 1e-6).all() and (mean <= upper + 1e-6).all()
        if previous is not None:  # a wider level contains the narrower one
            assert (lower <= previous[0] + 1e-6).all() and (upper >= previous[1] - 1e-6).all()
        previous = (lower, upper)
    # Plausible values for a series living in [6, 14].
    assert (np.abs(mean - 10.0) < 15.0).all()


def test_forecast_detect_health_metrics_and_docs(tiny_registry_dir, server_factory):
    server = server_factory(tiny_registry_dir)
    with server.client() as client:
        # One series; horizon and levels default to the model's horizon and [80, 95].
        one = hourly(48, "one")
        response = client.post("/v1/models/tiny/forecast", json={"series": [one]})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["model"] == {"name": "tiny", "version": 1}  # default = alias production = v1
        assert len(body["forecasts"]) == 1
        check_forecast(body["forecasts"][0], one, HORIZON, [80.0, 95.0])
        solo = body["forecasts"][0]

        # Many series, a smaller horizon, levels 50/80/95; the answer keeps the request's order.
        many = [hourly(24 + 10 * k, f"series-{k}", start=f"2024-0{k + 1}-03", seed=k) for k in range(4)]
        many.insert(2, one)
        response = client.post(
            "/v1/models/tiny/forecast", json={"series": many, "horizon": 3, "levels": [50, 80, 95]}
        )
        assert response.status_code == 200, response.text
        forecasts = response.json()["forecasts"]
        assert [f["id"] for f in forecasts] == [s["id"] for s in many]
        for forecast, series in zip(forecasts, many, strict=True):
            check_forecast(forecast, series, 3, [50.0, 80.0, 95.0])
        # Batching does not change a series' forecast: the same series alone and among others agree.
        together = forecasts[2]
        np.testing.assert_allclose(together["mean"], solo["mean"][:3], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            together["intervals"][2]["upper"], solo["intervals"][1]["upper"][:3], rtol=1e-4, atol=1e-4
        )

        # Offsets are converted to UTC; the forecast continues from the last instant in UTC.
        shifted = hourly(30, "offset")
        shifted["timestamps"] = [
            (datetime.fromisoformat(s) + timedelta(hours=2)).isoformat() + "+02:00"
            for s in shifted["timestamps"]
        ]
        response = client.post("/v1/models/tiny/forecast", json={"series": [shifted], "horizon": 2})
        assert response.status_code == 200, response.text
        assert response.json()["forecasts"][0]["timestamps"] == [
            "2024-03-02T06:00:00Z",
            "2024-03-02T07:00:00Z",
        ]

        # Version selection.
        selections = {"?version=1": 1, "?version=2": 2, "?alias=production": 1, "": 1}
        for query, expected in selections.items():
            response = client.post(f"/v1/models/tiny/forecast{query}", json={"series": [one]})
            assert response.status_code == 200, (query, response.text)
            assert response.json()["model"] == {"name": "tiny", "version": expected}, query
        forecasts_v1 = 1 + len(many) + 1 + 3  # series forecast by v1 so far
        forecasts_v2 = 1

        # Detection: one entry per point; no score during the learning period; scores in [0, 1].
        normal = hourly(400, "normal", seed=7)
        spread = float(np.std(normal["values"]))
        spike, dip = hourly(400, "spike", seed=7), hourly(400, "dip", seed=7)
        spike["values"][-1] += 10 * spread
        dip["values"][-1] -= 10 * spread
        response = client.post(
            "/v1/models/tiny/detect", json={"series": [normal, spike, dip], "sensitivity": 0.9}
        )
        assert response.status_code == 200, response.text
        detection = response.json()
        assert detection["model"] == {"name": "tiny", "version": 1}
        assert detection["sensitivity"] == 0.9
        assert detection["alpha"] == pytest.approx(10 ** (3 * 0.9 - 4))
        results = {result["id"]: result for result in detection["results"]}
        assert [r["id"] for r in detection["results"]] == ["normal", "spike", "dip"]
        for series in (normal, spike, dip):
            result = results[series["id"]]
            points = result["points"]
            assert [p["index"] for p in points] == list(range(400))
            assert [p["value"] for p in points] == pytest.approx(series["values"])
            assert [utc(p["timestamp"]) for p in points] == [utc(s) for s in series["timestamps"]]
            for point in points[:LEARNING]:
                assert point["score"] is None and point["expected"] is None
                assert point["is_anomaly"] is False and point["direction"] is None
            for point in points[LEARNING:]:
                assert 0.0 <= point["score"] <= 1.0 and point["sampling"] == "regular"
                assert point["lower"] <= point["expected"] <= point["upper"]
                assert (point["direction"] is not None) == point["is_anomaly"]
            assert result["anomalies"] == sum(p["is_anomaly"] for p in points)
        # Normal points rarely flag (alpha 5 %); the injected extremes do, on the right side.
        assert results["normal"]["anomalies"] <= 0.2 * (400 - LEARNING)
        assert results["spike"]["points"][-1]["is_anomaly"] is True
        assert results["spike"]["points"][-1]["direction"] == "up"
        assert results["dip"]["points"][-1]["is_anomaly"] is True
        assert results["dip"]["points"][-1]["direction"] == "down"
        # The spike's score is at least as extreme as any normal point's.
        assert results["spike"]["points"][-1]["score"] >= max(
            p["score"] for p in results["normal"]["points"][LEARNING:]
        )
        flagged = sum(result["anomalies"] for result in detection["results"])

        # Health and readiness.
        response = client.get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok"}
        response = client.get("/readyz")
        assert response.status_code == 200
        ready = response.json()
        assert ready["status"] == "ready"
        assert ready["checks"]["models"] == "loaded" and ready["checks"]["registry"] == "reachable"
        assert {"name": "tiny", "version": 1} in ready["models"]
        assert {"name": "tiny", "version": 2} in ready["models"]  # loaded on demand by ?version=2

        # Prometheus metrics.
        samples = scrape(client)
        forecast_route = {"method": "POST", "route": "/v1/models/{name}/forecast", "status": "200"}
        assert metric(samples, "tswatch_http_requests_total", **forecast_route) == 3 + len(selections)
        detect_route = {"method": "POST", "route": "/v1/models/{name}/detect", "status": "200"}
        assert metric(samples, "tswatch_http_requests_total", **detect_route) == 1
        assert (
            metric(samples, "tswatch_http_requests_total", method="GET", route="/readyz", status="200") >= 2
        )
        assert metric(
            samples,
            "tswatch_http_request_duration_seconds_count",
            method="POST",
            route=forecast_route["route"],
        ) == 3 + len(selections)
        loads = {"model": "tiny", "outcome": "loaded"}
        assert metric(samples, "tswatch_model_loads_total", version="1", **loads) == 1
        assert metric(samples, "tswatch_model_loads_total", version="2", **loads) == 1
        assert metric(samples, "tswatch_model_loaded", model="tiny", version="1") == 1
        assert metric(samples, "tswatch_forecasts_total", model="tiny", version="1") == forecasts_v1
        assert metric(samples, "tswatch_forecasts_total", model="tiny", version="2") == forecasts_v2
        assert metric(samples, "tswatch_anomalies_total", model="tiny", version="1") == flagged
        # Every forecast series went through one micro-batched forward pass.
        assert metric(samples, "tswatch_batch_size_sum") == forecasts_v1 + forecasts_v2
        assert 1 <= metric(samples, "tswatch_batch_size_count") <= 3 + len(selections)
        assert metric(samples, "tswatch_batch_size_bucket", le="+Inf") == metric(
            samples, "tswatch_batch_size_count"
        )
        # Unknown paths are counted under one label, not their raw path.
        assert client.get("/no/such/path").status_code == 404
        samples = scrape(client)
        assert (
            metric(samples, "tswatch_http_requests_total", method="GET", route="unmatched", status="404") == 1
        )
        assert not any("/no/such/path" in str(labels) for _, labels in samples)

        # The OpenAPI document and the interactive docs.
        response = client.get("/openapi.json")
        assert response.status_code == 200
        document = response.json()
        assert document["info"]["title"] == "tswatch"
        for path in (
            "/v1/models/{name}/forecast",
            "/v1/models/{name}/detect",
            "/v1/detect",
            "/v1/models",
            "/v1/models/{name}",
            "/v1/models/{name}/versions/{version}",
            "/v1/models/{name}/aliases/{alias}",
            "/healthz",
            "/readyz",
            "/metrics",
        ):
            assert path in document["paths"], path
        assert "HTTPBearer" in document["components"]["securitySchemes"]
        response = client.get("/docs")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "swagger" in response.text.lower() and "/openapi.json" in response.text


def test_registry_endpoints_and_alias_management(models_dir, server_factory):
    server = server_factory(models_dir)
    series = hourly(48)
    with server.client() as client:

        def served_version(query: str = "") -> int:
            response = client.post(f"/v1/models/tiny/forecast{query}", json={"series": [series]})
            assert response.status_code == 200, response.text
            return response.json()["model"]["version"]

        response = client.get("/v1/models")
        assert response.status_code == 200
        assert response.json() == [
            {"name": "tiny", "latest_version": 2, "aliases": {"production": 1}, "versions": [1, 2]}
        ]

        response = client.get("/v1/models/tiny")
        assert response.status_code == 200
        detail = response.json()
        assert detail["name"] == "tiny" and detail["versions"] == [1, 2] and detail["latest_version"] == 2
        assert detail["aliases"] == {"production": 1} and detail["default_version"] == 1
        assert [v["version"] for v in detail["version_details"]] == [1, 2]
        assert [v["aliases"] for v in detail["version_details"]] == [["production"], []]
        for version in detail["version_details"]:
            assert utc(version["created_at"]) <= datetime.now(UTC)
            assert version["created_at"].endswith(("Z", "+00:00"))  # an RFC 3339 date-time, in UTC
            metrics = version["metrics"]
            assert {"mae", "rmse"} <= set(metrics)
            assert set(version["baselines"]) == {"seasonal_naive", "random_walk"}
            for baseline in version["baselines"].values():  # the same metrics, side by side
                assert set(baseline) == set(metrics)
                assert all(np.isfinite(value) for value in baseline.values())

        response = client.get("/v1/models/tiny/versions/1")
        assert response.status_code == 200
        version = response.json()
        assert version["name"] == "tiny" and version["version"] == 1 and version["aliases"] == ["production"]
        manifest = version["manifest"]
        assert manifest["name"] == "tiny" and manifest["version"] == 1
        assert manifest["weights"]["sha256"]
        assert manifest["data"]["frequency"] == "h"
        assert {"spec", "metrics", "data"} <= set(manifest)
        assert set(manifest["anomaly"]) == {"calibrated_series"}  # bulky calibration samples are left out
        assert client.get("/v1/models/tiny/versions/2").json()["aliases"] == []

        # A new alias, usable at once.
        response = client.put("/v1/models/tiny/aliases/staging", json={"version": 2})
        assert response.status_code == 200, response.text
        assert response.json() == {"name": "tiny", "alias": "staging", "version": 2}
        assert client.get("/v1/models/tiny").json()["aliases"] == {"production": 1, "staging": 2}
        assert served_version("?alias=staging") == 2
        assert served_version() == 1

        # Moving production: the server follows within a few poll intervals. Forced: the tiny models lose to
        # seasonal naive (tests/api/test_baseline_guard_api.py covers the refusal).
        response = client.put("/v1/models/tiny/aliases/production", json={"version": 2, "force": True})
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 5
        while served_version() != 2:
            assert time.monotonic() < deadline, "the server kept serving v1 after production moved to v2"
            time.sleep(0.1)
        assert served_version("?alias=production") == 2
        assert client.get("/v1/models/tiny").json()["default_version"] == 2

        # Deleting an alias: 204, then requests naming it are 404 again, and a second delete is 404.
        response = client.delete("/v1/models/tiny/aliases/staging")
        assert response.status_code == 204 and response.content == b""
        assert client.get("/v1/models/tiny").json()["aliases"] == {"production": 2}
        deadline = time.monotonic() + 5
        while (
            response := client.post("/v1/models/tiny/forecast?alias=staging", json={"series": [series]})
        ).status_code == 200:
            assert time.monotonic() < deadline, "a deleted alias kept answering"
            time.sleep(0.1)
        assert response.status_code == 404
        assert response.json()["type"] == "urn:tswatch:problem:alias-not-found"
        assert client.delete("/v1/models/tiny/aliases/staging").status_code == 404

        # Without production the default falls back to the latest version.
        assert client.delete("/v1/models/tiny/aliases/production").status_code == 204
        assert client.get("/v1/models/tiny").json()["default_version"] == 2
        assert served_version() == 2

        # Alias changes validate their input.
        assert client.put("/v1/models/tiny/aliases/staging", json={"version": 9}).status_code == 404
        assert client.put("/v1/models/tiny/aliases/Bad Alias", json={"version": 1}).status_code == 422
        assert client.put("/v1/models/tiny/aliases/staging", json={"version": 0}).status_code == 422
        assert client.put("/v1/models/nope/aliases/staging", json={"version": 1}).status_code == 404
