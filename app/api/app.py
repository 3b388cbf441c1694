"""The FastAPI application factory: `create_app(settings)`; components are built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import app as package
from app.api.limits import BodySizeLimitMiddleware, LargerBodies
from app.api.metrics import ApiMetrics, MetricsMiddleware
from app.api.problems import install_problem_handlers
from app.api.routes import (
    azure,
    detect,
    forecasts,
    health,
    hooks,
    intervals,
    jobs,
    models,
    prometheus,
    streams,
    ui,
    webhooks,
)
from app.api.services import Services
from app.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        services = Services.open(settings, metrics)
        application.state.services = services
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    application = FastAPI(
        title="tswatch",
        version=package.__version__,
        description="Forecasts with calibrated intervals and residual-based anomaly detection.",
        lifespan=lifespan,
    )
    install_problem_handlers(application)
    routers = (
        health.router,
        forecasts.router,
        intervals.router,
        detect.router,
        models.router,
        jobs.router,
        streams.router,
        ui.router,
    )
    for router in (*routers, ui.pages):
        application.include_router(router)
    application.mount("/ui/static", StaticFiles(directory=ui.STATIC_DIR), name="ui-static")
    for router in (hooks.router, webhooks.router, azure.router, prometheus.router):
        application.include_router(router)
    uploads = LargerBodies("POST", jobs.UPLOAD_PATH, settings.max_upload_bytes)
    application.add_middleware(
        BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes, larger=[uploads]
    )
    application.add_middleware(MetricsMiddleware, metrics=metrics)
    return application
