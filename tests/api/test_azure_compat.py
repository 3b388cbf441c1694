"""The Azure-compatible univariate endpoints, driven by Azure's own clients (v1.1 `azure-ai-anomalydetector`,
v1.0 `azure-cognitiveservices-anomalydetector`), unmodified, against a real uvicorn on 127.0.0.1 with a key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from azure.ai.anomalydetector import AnomalyDetectorClient
from azure.ai.anomalydetector.models import (
    TimeSeriesPoint,
    UnivariateChangePointDetectionOptions,
    UnivariateDetectionOptions,
)
from azure.cognitiveservices.anomalydetector import AnomalyDetectorClient as ClientV10
from azure.cognitiveservices.anomalydetector.models import (
    APIErrorException,
    ChangePointDetectRequest,
    Granularity,
    Point,
    Request,
)
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from fastapi.testclient import TestClient
from msrest.authentication import CognitiveServicesCredentials

from app.api.app import create_app
from app.settings import Settings
from tests.api.azure_series import daily_cycle, level_shift, stamps

pytestmark = pytest.mark.sqlite_only

KEY = "tsw_azure_compat_test_key_0123456789"


@pytest.fixture(scope="module")
def endpoint(
    tmp_path_factory: pytest.TempPathFactory, live_server: Callable[..., AbstractContextManager[str]]
) -> Iterator[str]:
    models = tmp_path_factory.mktemp("azure-models")
    settings = Settings(models_dir=models, database_url=None, admin_key=KEY, max_detect_points=5_000)
    with live_server(create_app(settings), lifespan="on") as url:
        yield url


@pytest.fixture
def client(endpoint: str) -> Iterator[AnomalyDetectorClient]:
    with AnomalyDetectorClient(endpoint, AzureKeyCredential(KEY)) as detector:
        yield detector


@pytest.fixture
def client_v10(endpoint: str) -> ClientV10:
    return ClientV10(endpoint, CognitiveServicesCredentials(KEY))


def points(values: list[float], step: timedelta = timedelta(hours=1)) -> list[TimeSeriesPoint]:
    return [
        TimeSeriesPoint(timestamp=stamp, value=value)
        for stamp, value in zip(stamps(len(values), step), values, strict=True)
    ]


def points_v10(values: list[float], step: timedelta = timedelta(hours=1)) -> list[Point]:
    return [
        Point(timestamp=stamp, value=value)
        for stamp, value in zip(stamps(len(values), step), values, strict=True)
    ]


# ------------------------------------------------------------------------------------------------ v1.1 client
def test_entire_detect_v11_flags_the_spike(client: AnomalyDetectorClient) -> None:
    values = daily_cycle(72, seed=1, spike_at=50)
    result = client.detect_univariate_entire_series(
        UnivariateDetectionOptions(series=points(values), granularity="hourly", sensitivity=95)
    )
    assert len(result.expected_values) == len(result.is_anomaly) == len(result.severity) == 72
    assert result.is_anomaly[50] and result.is_positive_anomaly[50] and not result.is_negative_anomaly[50]
    assert result.severity[50] > 0
    assert sum(result.is_anomaly) <= 72 // 4  # maxAnomalyRatio's default, 0.25
    assert all(
        up >= 0 and low >= 0 for up, low in zip(result.upper_margins, result.lower_margins, strict=True)
    )
    assert result.period == 24  # three days of hourly readings: the detector uses the daily season
    normal = [i for i in range(72) if abs(i - 50) > 1]
    assert max(abs(values[i] - result.expected_values[i]) for i in normal) < 3.0


def test_last_detect_v11_judges_the_last_point(client: AnomalyDetectorClient) -> None:
    values = daily_cycle(48, seed=2, spike_at=47, spike=-12.0)
    result = client.detect_univariate_last_point(
        UnivariateDetectionOptions(series=points(values), granularity="hourly")
    )
    assert result.is_anomaly and result.is_negative_anomaly and not result.is_positive_anomaly
    assert result.suggested_window == 101
    assert result.expected_value - result.lower_margin > values[-1]
    calm = client.detect_univariate_last_point(
        UnivariateDetectionOptions(series=points(daily_cycle(48, seed=2)), granularity="hourly")
    )
    assert not calm.is_anomaly and calm.severity == 0


def test_change_point_v11_finds_the_level_shift(client: AnomalyDetectorClient) -> None:
    values = level_shift(60, at=35, seed=3)
    result = client.detect_univariate_change_point(
        UnivariateChangePointDetectionOptions(
            series=points(values, timedelta(days=1)), granularity="daily", stable_trend_window=5
        )
    )
    assert len(result.is_change_point) == len(result.confidence_scores) == 60
    assert [index for index, flag in enumerate(result.is_change_point) if flag] == [35]
    assert result.confidence_scores[35] > 0.99


def test_invalid_series_v11_raises_the_clients_error_with_azures_code(client: AnomalyDetectorClient) -> None:
    with pytest.raises(HttpResponseError) as caught:
        client.detect_univariate_entire_series(
            UnivariateDetectionOptions(series=points([1.0, 2.0, 3.0]), granularity="hourly")
        )
    assert caught.value.status_code == 400
    assert caught.value.model.code == "InvalidSeries"
    assert "at least 12 points" in caught.value.model.message
    unsorted = points(daily_cycle(20))
    unsorted[3], unsorted[4] = unsorted[4], unsorted[3]
    with pytest.raises(HttpResponseError) as caught:
        client.detect_univariate_entire_series(
            UnivariateDetectionOptions(series=unsorted, granularity="hourly")
        )
    assert caught.value.model.code == "InvalidSeries"


def test_wrong_key_is_the_clients_authentication_error(endpoint: str) -> None:
    with (
        AnomalyDetectorClient(endpoint, AzureKeyCredential("tsw_wrong")) as client,
        pytest.raises(ClientAuthenticationError),
    ):
        client.detect_univariate_last_point(
            UnivariateDetectionOptions(series=points(daily_cycle(24)), granularity="hourly")
        )


# ------------------------------------------------------------------------------------------------ v1.0 client
def test_entire_and_last_detect_v10(client_v10: ClientV10) -> None:
    values = daily_cycle(72, seed=4, spike_at=40)
    entire = client_v10.entire_detect(Request(series=points_v10(values), granularity=Granularity.hourly))
    assert entire.is_anomaly[40] and entire.is_positive_anomaly[40]
    assert len(entire.expected_values) == len(entire.upper_margins) == 72
    last = client_v10.last_detect(Request(series=points_v10(values[:41]), granularity=Granularity.hourly))
    assert last.is_anomaly and last.is_positive_anomaly
    assert last.upper_margin > 0 and last.suggested_window == 101


def test_change_point_v10(client_v10: ClientV10) -> None:
    values = level_shift(60, at=30, seed=5, shift=-6.0)
    result = client_v10.change_point_detect(
        ChangePointDetectRequest(series=points_v10(values, timedelta(days=1)), granularity=Granularity.daily)
    )
    assert [index for index, flag in enumerate(result.is_change_point) if flag] == [30]


def test_invalid_series_v10_raises_the_clients_error_with_azures_code(client_v10: ClientV10) -> None:
    with pytest.raises(APIErrorException) as caught:
        client_v10.entire_detect(Request(series=points_v10([1.0] * 5), granularity=Granularity.daily))
    assert caught.value.response.status_code == 400
    assert caught.value.error.code == "InvalidSeries"
    off_grid = points_v10(daily_cycle(24))
    off_grid[7].timestamp += timedelta(minutes=30)
    with pytest.raises(APIErrorException) as caught:
        client_v10.last_detect(Request(series=off_grid, granularity=Granularity.hourly))
    assert caught.value.error.code == "InvalidSeries"
    assert "index 7" in caught.value.error.message


# ------------------------------------------------------------------------------------------------ raw HTTP
def raw_body(count: int = 24, **options: object) -> dict[str, object]:
    series = [
        {"timestamp": stamp.isoformat(), "value": value}
        for stamp, value in zip(stamps(count), daily_cycle(count), strict=True)
    ]
    return {"series": series, "granularity": "hourly", **options}


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("v1.1/timeseries/entire/detect", raw_body(sensitivity=150), "InvalidModelArgument"),
        ("v1.1/timeseries/entire/detect", raw_body(maxAnomalyRatio=0.6), "InvalidModelArgument"),
        ("v1.1/timeseries/entire/detect", raw_body(granularity="fortnightly"), "InvalidGranularity"),
        ("v1.1/timeseries/entire/detect", raw_body(customInterval=0), "InvalidCustomInterval"),
        ("v1.1/timeseries/entire/detect", raw_body(period=-1), "InvalidPeriod"),
        ("v1.1/timeseries/entire/detect", raw_body(period=20), "InvalidModelArgument"),
        ("v1.1/timeseries/entire/detect", raw_body(imputeMode="guess"), "InvalidImputeMode"),
        ("v1.1/timeseries/entire/detect", raw_body(imputeMode="fixed"), "InvalidImputeFixedValue"),
        ("v1.1/timeseries/last/detect", {"granularity": "hourly"}, "RequiredSeries"),
        ("v1.0/timeseries/last/detect", {"series": raw_body()["series"]}, "RequiredGranularity"),
        ("v1.0/timeseries/entire/detect", raw_body(granularity="none"), "InvalidGranularity"),
        ("v1.1/timeseries/entire/detect", {"series": [{"value": "x"}] * 12}, "BadArgument"),
        (
            "v1.1/timeseries/entire/detect",
            {**raw_body(), "series": raw_body(13000)["series"]},
            "InvalidSeries",
        ),
        ("v1.1/timeseries/changepoint/detect", raw_body(stableTrendWindow=12), "InvalidModelArgument"),
        ("v1.1/timeseries/changepoint/detect", raw_body(threshold=1.5), "InvalidModelArgument"),
    ],
)
def test_invalid_requests_answer_azures_error_body(
    endpoint: str, path: str, body: dict[str, object], code: str
) -> None:
    reply = httpx.post(
        f"{endpoint}/anomalydetector/{path}", json=body, headers={"Ocp-Apim-Subscription-Key": KEY}
    )
    assert reply.status_code == 400, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["x-ms-error-code"] == code
    assert set(reply.json()) == {"code", "message"} and reply.json()["code"] == code


def test_other_errors_on_azure_paths_keep_azures_shape(endpoint: str) -> None:
    key = {"Ocp-Apim-Subscription-Key": KEY}
    url = f"{endpoint}/anomalydetector/v1.1/timeseries"
    malformed = httpx.post(f"{url}/entire/detect", content=b"{not json", headers=key)
    assert (malformed.status_code, malformed.json()["code"]) == (400, "InvalidJsonFormat")
    missing_key = httpx.post(f"{url}/entire/detect", json=raw_body())
    assert (missing_key.status_code, missing_key.json()["code"]) == (401, "Unauthorized")
    unknown = httpx.post(f"{url}/nowhere/detect", json=raw_body(), headers=key)
    assert (unknown.status_code, set(unknown.json())) == (404, {"code", "message"})
    wrong_method = httpx.get(f"{url}/entire/detect", headers=key)
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "MethodNotAllowed")


def test_an_oversized_body_on_an_azure_path_answers_azures_error(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path, database_url=None, admin_key=KEY, max_body_bytes=1024)
    client = TestClient(create_app(settings))  # the size guard answers before any route or service runs
    url = "/anomalydetector/v1.1/timeseries/entire/detect"
    reply = client.post(url, content=b" " * 2048, headers={"Ocp-Apim-Subscription-Key": KEY})
    assert (reply.status_code, reply.headers["content-type"]) == (413, "application/json")
    assert reply.json()["code"] == "InvalidSeries" and "1024 bytes" in reply.json()["message"]


def test_bearer_key_and_imputation_and_no_granularity(endpoint: str) -> None:
    bearer = {"Authorization": f"Bearer {KEY}"}
    url = f"{endpoint}/anomalydetector/v1.1/timeseries/entire/detect"
    body = raw_body(30, imputeMode="linear")
    del body["series"][10:13]  # type: ignore[attr-defined]
    reply = httpx.post(url, json=body, headers=bearer)
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["expectedValues"]) == 27  # answers for the points sent, not the imputed ones
    plain = {"series": [{"value": value} for value in daily_cycle(20)]}  # granularity none: no timestamps
    reply = httpx.post(url, json=plain, headers=bearer)
    assert reply.status_code == 200, reply.text
    assert reply.json()["period"] == 0 and len(reply.json()["isAnomaly"]) == 20
