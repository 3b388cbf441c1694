"""`tswatch serve`: run the API under uvicorn (training the demo models first when asked)."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated, Any

import torch
import typer
import uvicorn

from app.api.app import create_app
from app.api.connection_limits import ConnectionLimits, guarded_protocol
from app.cli.output import console, fail
from app.cli.progress import training_progress
from app.cli.quality import manifest_losses, warn_if_losing
from app.demo.models import train_demo_models
from app.hosts import is_loopback
from app.keys.store import KeyStore
from app.registry.factory import open_registry
from app.settings import Settings
from app.storage.schema import open_database


def check_auth(settings: Settings) -> None:
    """Refuse to serve without keys on a non-loopback address; say so when open on loopback."""
    if settings.admin_key is not None or KeyStore(open_database(settings)).has_active_keys():
        return
    if not is_loopback(settings.host):
        fail(
            f"no API keys exist and the server would listen on {settings.host}: refusing to start open to the "
            "network. Create one with `tswatch keys create --role admin` or set TSWATCH_ADMIN_KEY."
        )
    console.print(
        f"[yellow]No API keys exist: every endpoint is open, which is allowed only on loopback ({settings.host}). "
        "Create keys with `tswatch keys create`.[/]"
    )


def ensure_demo(settings: Settings) -> None:
    registry = open_registry(settings)
    if registry.list_models():
        return
    console.print("The registry is empty: training the demo models (stocks-aapl, nyc-taxi) first.")
    torch.set_num_threads(settings.torch_threads)
    for result in train_demo_models(registry, lambda name: training_progress(console, name)):
        warn_if_losing(manifest_losses(result.manifest), result.version.name, result.version.version)
        if result.refused_alias is not None:
            console.print(
                f"{result.version.name}: served as its latest version; alias '{result.refused_alias}' not set.",
                highlight=False,
            )


def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default TSWATCH_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default TSWATCH_PORT or 8000).")] = None,
    demo: Annotated[
        bool | None, typer.Option("--demo/--no-demo", help="Train the demo models if the registry is empty.")
    ] = None,
) -> None:
    """Serve forecasts and anomaly detection over HTTP."""
    overrides: dict[str, Any] = {
        key: value
        for key, value in {"host": host, "port": port, "demo_on_empty": demo}.items()
        if value is not None
    }
    settings = Settings(**overrides)
    if settings.demo_on_empty:
        ensure_demo(settings)
    check_auth(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(ConnectionLimits.from_settings(settings)),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        log_level="info",
        proxy_headers=False,
    )
    # uvicorn re-raises a caught SIGTERM after its graceful shutdown; a completed shutdown is a clean exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.Server(config).run()


def register(cli: typer.Typer) -> None:
    cli.command()(serve)
