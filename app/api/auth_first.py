"""Authentication before the body: routers' `route_class`, so an unauthenticated client costs no body parse.

FastAPI reads and validates a route's body before it runs the route's dependencies, the key check among them:
without this, a caller without a key could make the server read and parse bodies up to the size limit. A route
whose dependencies declare the bearer scheme (`ReadAccess`, `WriteAccess`, `AdminAccess`) authenticates the
caller from its headers first; the principal is remembered for the request, so the role check in the dependency
does not authenticate again. Other routes (health, the UI's session, the inbound hook, whose signature is
checked over the raw body) are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.api.auth import bearer_scheme
from app.api.deps import authenticate_request, get_services

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def needs_key(dependant: Dependant) -> bool:
    """Whether `dependant` (or any dependency below it) declares the bearer-key security scheme."""
    return any(sub.call is bearer_scheme or needs_key(sub) for sub in dependant.dependencies)


class AuthenticatedRoute(APIRoute):
    """An APIRoute that, if it needs a key, authenticates the caller before reading the body (401 first)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if not needs_key(self.dependant):
            return handler

        async def authenticate_then_handle(request: Request) -> Response:
            await authenticate_request(request, await get_services(request))
            return await handler(request)

        return authenticate_then_handle
