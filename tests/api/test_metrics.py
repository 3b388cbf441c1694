import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client.parser import text_string_to_metric_families

from app.api.limits import BodySizeLimitMiddleware
from app.api.metrics import ApiMetrics, MetricsMiddleware
from app.api.problems import install_problem_handlers


def build_app(metrics: ApiMetrics) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=1024)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # added last = outermost: 413s are counted too

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"item_id": item_id}

    @app.post("/items")
    async def create(payload: dict) -> dict:
        return payload

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("kaput")

    @app.get("/metrics")
    async def scrape() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    return app


def samples(text: str, name: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labels(**values) -> tuple:
    return tuple(sorted(values.items()))


@pytest.fixture
def scrape(live_server):
    metrics = ApiMetrics()
    with live_server(build_app(metrics)) as url, httpx.Client(base_url=url) as client:
        yield client, lambda: client.get("/metrics").text


def test_requests_are_counted_by_route_template_and_status(scrape):
    client, read = scrape
    client.get("/items/1")
    client.get("/items/2")
    client.get("/items/oops")
    client.get("/missing/path")
    client.delete("/items/1")
    client.get("/boom")
    client.post("/items", content=b"x" * 2048, headers={"Content-Type": "application/json"})
    text = read()
    assert 'tswatch_http_requests_total{method="GET",route="/items/{item_id}",status="200"} 2.0' in text
    counts = samples(text, "tswatch_http_requests_total")
    assert counts[labels(method="GET", route="/items/{item_id}", status="422")] == 1
    assert counts[labels(method="GET", route="unmatched", status="404")] == 1
    assert counts[labels(method="DELETE", route="/items/{item_id}", status="405")] == 1
    assert counts[labels(method="GET", route="/boom", status="500")] == 1
    assert counts[labels(method="POST", route="unmatched", status="413")] == 1
    assert not any("/items/1" in dict(key)["route"] for key in counts)


def test_latency_histogram_has_route_labels_and_buckets(scrape):
    client, read = scrape
    client.get("/items/7")
    text = read()
    buckets = samples(text, "tswatch_http_request_duration_seconds_bucket")
    route = labels(method="GET", route="/items/{item_id}", le="10.0")
    assert buckets[route] == 1
    assert {dict(key)["le"] for key in buckets} >= {"0.001", "10.0", "+Inf"}
    assert (
        samples(text, "tswatch_http_request_duration_seconds_count")[
            labels(method="GET", route="/items/{item_id}")
        ]
        == 1
    )


def test_scrapes_count_themselves(scrape):
    client, read = scrape
    read()
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        samples(response.text, "tswatch_http_requests_total")[
            labels(method="GET", route="/metrics", status="200")
        ]
        == 1
    )


def test_model_forecast_anomaly_and_batch_metrics():
    metrics = ApiMetrics()
    metrics.model_loaded("taxi", 3, ok=True)
    metrics.model_loaded("taxi", 4, ok=False)
    metrics.forecasts("taxi", 3, 5)
    metrics.forecasts("taxi", 3, 2)
    metrics.anomalies("taxi", 3, 4)
    for size in (1, 8, 8):
        metrics.batch(size)
    payload, content_type = metrics.render()
    text = payload.decode()
    assert content_type.startswith("text/plain")
    loads = samples(text, "tswatch_model_loads_total")
    assert loads[labels(model="taxi", version="3", outcome="loaded")] == 1
    assert loads[labels(model="taxi", version="4", outcome="failed")] == 1
    loaded = samples(text, "tswatch_model_loaded")
    assert loaded == {labels(model="taxi", version="3"): 1}
    assert samples(text, "tswatch_forecasts_total") == {labels(model="taxi", version="3"): 7}
    assert samples(text, "tswatch_anomalies_total") == {labels(model="taxi", version="3"): 4}
    assert samples(text, "tswatch_batch_size_count") == {(): 3}
    assert samples(text, "tswatch_batch_size_sum") == {(): 17}
    metrics.model_unloaded("taxi", 3)
    assert samples(metrics.render()[0].decode(), "tswatch_model_loaded") == {
        labels(model="taxi", version="3"): 0
    }


def test_two_instances_do_not_share_state():
    first, second = ApiMetrics(), ApiMetrics()
    first.observe_request("GET", "/a", 200, 0.01)
    assert "/a" in first.render()[0].decode()
    assert "/a" not in second.render()[0].decode()


def test_unusual_methods_are_folded_to_other():
    metrics = ApiMetrics()
    metrics.observe_request("BREW", "unmatched", 405, 0.001)
    assert samples(metrics.render()[0].decode(), "tswatch_http_requests_total") == {
        labels(method="OTHER", route="unmatched", status="405"): 1
    }
