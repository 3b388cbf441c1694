"""Every FastAPI dependency of the routes and its `Annotated` alias: services, stores, callers' access.

The services are built in the app's lifespan (`app.api.services`) and read from the application state here
and only here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from app.api.auth import SUBSCRIPTION_KEY_HEADER, Principal, authenticate, authorize, bearer_scheme
from app.api.services import Services
from app.jobs.service import JobService
from app.keys.roles import Role
from app.prometheus.ingest import RemoteWriteIngest
from app.registry.store import Registry
from app.streams.service import StreamService
from app.webhooks.inbound import MessageKey, has_webhook_headers
from app.webhooks.ingest import PointIngest
from app.webhooks.subscriptions import EndpointStore


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_registry(services: ServicesDep) -> Registry:
    return services.registry


async def get_streams(services: ServicesDep) -> StreamService:
    return services.streams


async def get_endpoints(services: ServicesDep) -> EndpointStore:
    return services.webhooks.endpoints


async def get_point_ingest(services: ServicesDep) -> PointIngest:
    return services.ingest


RegistryDep = Annotated[Registry, Depends(get_registry)]
StreamsDep = Annotated[StreamService, Depends(get_streams)]
EndpointsDep = Annotated[EndpointStore, Depends(get_endpoints)]
PointIngestDep = Annotated[PointIngest, Depends(get_point_ingest)]


async def get_remote_write(services: ServicesDep) -> RemoteWriteIngest:
    return services.remote_write


RemoteWriteDep = Annotated[RemoteWriteIngest, Depends(get_remote_write)]


async def get_jobs(services: ServicesDep) -> JobService:
    return services.jobs


JobsDep = Annotated[JobService, Depends(get_jobs)]


async def authenticate_request(request: Request, services: Services) -> Principal:
    """The caller of `request` (its bearer key, or the anonymous admin of an open loopback server); found once
    per request (`app.api.auth_first` asks before the body is read, the role dependency asks again later)."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is None:
        headers = request.headers
        known = await authenticate(
            services.keys,
            services.settings.host,
            headers.get("authorization"),
            headers.get(SUBSCRIPTION_KEY_HEADER),
        )
        request.state.principal = known
    return known


@cache
def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers whose role is at least `role` (cached, so one per role)."""

    async def dependency(
        request: Request,
        services: ServicesDep,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    ) -> Principal:
        return authorize(await authenticate_request(request, services), role)

    dependency.__name__ = f"require_{role.value}"
    return dependency


ReadAccess = Annotated[Principal, Depends(require_role(Role.READ))]
WriteAccess = Annotated[Principal, Depends(require_role(Role.WRITE))]
AdminAccess = Annotated[Principal, Depends(require_role(Role.ADMIN))]


async def authenticate_hook(request: Request, services: ServicesDep) -> MessageKey | None:
    """The key (signer, webhook-id) of a signed request (checked over the raw body before it is parsed); None
    for an API-key caller with role write or higher."""
    if has_webhook_headers(request.headers):
        return await services.ingest.verify(request.headers, await request.body())
    authorize(await authenticate_request(request, services), Role.WRITE)
    return None


HookAuth = Annotated[MessageKey | None, Depends(authenticate_hook)]
