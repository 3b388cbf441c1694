"""Prometheus metrics. Each ApiMetrics owns its CollectorRegistry, so several apps can live in one process."""

from __future__ import annotations

import time
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
KNOWN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED: Final = "unmatched"


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tswatch_http_requests",
            "HTTP requests by method, route template and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "tswatch_http_request_duration_seconds",
            "Time from request start until the response was sent.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_loads = Counter(
            "tswatch_model_loads",
            "Attempts to load a model version into the server.",
            ("model", "version", "outcome"),
            registry=self.registry,
        )
        self.model_loaded_gauge = Gauge(
            "tswatch_model_loaded",
            "1 while a model version is loaded and serving.",
            ("model", "version"),
            registry=self.registry,
        )
        self.forecast_series = Counter(
            "tswatch_forecasts", "Series forecast.", ("model", "version"), registry=self.registry
        )
        self.anomaly_points = Counter(
            "tswatch_anomalies", "Points flagged as anomalous.", ("model", "version"), registry=self.registry
        )
        self.worker_restarts = Counter(
            "tswatch_inference_worker_restarts",
            "Times the inference worker process died and was started again.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "tswatch_batch_size",
            "Series per forward pass (above 1 when micro-batching coalesces requests).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.remote_write = Counter(
            "tswatch_remote_write_samples",
            "Prometheus remote write samples by outcome (stored, duplicate, stale, bad_timestamp, unmatched, "
            "stream_limit, refused).",
            ("outcome",),
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def model_loaded(self, name: str, version: int | str, ok: bool) -> None:
        self.model_loads.labels(name, str(version), "loaded" if ok else "failed").inc()
        if ok:
            self.model_loaded_gauge.labels(name, str(version)).set(1)

    def model_unloaded(self, name: str, version: int | str) -> None:
        self.model_loaded_gauge.labels(name, str(version)).set(0)

    def forecasts(self, name: str, version: int | str, n: int = 1) -> None:
        self.forecast_series.labels(name, str(version)).inc(n)

    def anomalies(self, name: str, version: int | str, n: int) -> None:
        self.anomaly_points.labels(name, str(version)).inc(n)

    def worker_restarted(self) -> None:
        self.worker_restarts.inc()

    def batch(self, n: int) -> None:
        self.batch_size.observe(n)

    def remote_write_samples(self, outcome: str, n: int) -> None:
        self.remote_write.labels(outcome).inc(n)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def route_label(scope: Scope) -> str:
    """The matched route's template (e.g. `/models/{name}`), never the raw path, to bound label cardinality."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], route_label(scope), status, elapsed)
