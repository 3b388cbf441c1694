"""The HTTP stack's ceiling for `bench/serve.py`: the tswatch app plus an echo of the forecast body.

`create_echo_app` is the product's own app (same middleware, authentication, problem handlers and services)
with one extra route, `POST /v1/echo`, that parses a forecast request and returns it unchanged. Run under
uvicorn with the configuration `tswatch serve` uses, so forecast and echo are measured on one server:

    python bench/echo_app.py --port 8000   (settings from TSWATCH_* variables, as for `tswatch serve`)
"""

from __future__ import annotations

import argparse
import signal
import sys

import uvicorn
from fastapi import APIRouter, FastAPI

from app.api.app import create_app
from app.api.connection_limits import ConnectionLimits, guarded_protocol
from app.api.deps import ReadAccess
from app.api.schemas.forecasts import ForecastRequest
from app.settings import Settings

echo = APIRouter(prefix="/v1", tags=["benchmark"])


@echo.post("/echo", response_model=ForecastRequest)
async def create_echo(body: ForecastRequest, _: ReadAccess) -> ForecastRequest:
    """Parse a forecast request and return it unchanged."""
    return body


def create_echo_app(settings: Settings) -> FastAPI:
    application = create_app(settings)
    application.include_router(echo)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings(host="127.0.0.1", port=args.port)
    config = uvicorn.Config(
        create_echo_app(settings),
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(ConnectionLimits.from_settings(settings)),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        log_level="warning",
        proxy_headers=False,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as `tswatch serve`: a completed shutdown is clean
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
