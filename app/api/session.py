"""What the dashboard learns from `/v1/ui/session`: whether this server needs a key, whether the one sent (if
any) is accepted, and which optional API groups (webhooks, streams) the server exposes."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.api.auth import AuthenticationError
from app.api.deps import authenticate_request
from app.api.schemas.ui import SessionOut
from app.api.services import Services
from app.concurrency import run_blocking


def _get_paths(request: Request) -> list[str]:
    """GET paths of the API, from its OpenAPI document (built once, then cached by FastAPI)."""
    paths: dict[str, dict[str, Any]] = request.app.openapi().get("paths", {})
    return sorted(path for path, operations in paths.items() if "get" in operations)


def _features(paths: list[str]) -> dict[str, bool]:
    return {
        "webhooks": any(path.startswith("/v1/webhooks") for path in paths),
        "streams": any(path.startswith("/v1/streams") for path in paths),
    }


async def describe_session(request: Request, services: Services) -> SessionOut:
    """The session of `request`'s caller; a refused key is described, never raised (the page asks first)."""
    paths = _get_paths(request)
    features = _features(paths)
    webhook_routes = [path for path in paths if path.startswith("/v1/webhooks")]
    required = await run_blocking(services.keys.has_active_keys)
    try:
        principal = await authenticate_request(request, services)
    except AuthenticationError as error:
        return SessionOut(
            auth_required=True,
            authenticated=False,
            role=None,
            key_id=None,
            problem=error.detail,
            features=features,
            webhook_routes=webhook_routes,
        )
    return SessionOut(
        auth_required=required,
        authenticated=True,
        role=principal.role.value,
        key_id=principal.key_id,
        problem=None,
        features=features,
        webhook_routes=webhook_routes,
    )
