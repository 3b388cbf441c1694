"""The model registry over HTTP: list, inspect, move aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import AdminAccess, ReadAccess, RegistryDep, ServicesDep, WriteAccess
from app.api.schemas.common import MAX_VERSION
from app.api.schemas.models import (
    AliasRequest,
    AliasResponse,
    ModelDetail,
    ModelSummary,
    VersionDetail,
    VersionSummary,
)
from app.concurrency import run_blocking

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=AuthenticatedRoute)


@router.get("", response_model=list[ModelSummary])
async def list_models(registry: RegistryDep, _: ReadAccess) -> list[ModelSummary]:
    """Every registered model with its versions and aliases."""
    models = await run_blocking(registry.list_models)
    return [
        ModelSummary(name=m.name, latest_version=m.latest_version, aliases=m.aliases, versions=m.versions)
        for m in models
    ]


@router.get("/{name}", response_model=ModelDetail)
async def read_model(name: str, registry: RegistryDep, _: ReadAccess) -> ModelDetail:
    """One model: versions with test metrics next to the naive baselines, aliases, default version."""
    model, versions = await run_blocking(registry.model_versions, name)
    return ModelDetail(
        name=model.name,
        latest_version=model.latest_version,
        aliases=model.aliases,
        versions=model.versions,
        default_version=model.default_version,
        version_details=[VersionSummary.of(v, model.aliases_of(v.version)) for v in versions],
    )


@router.get("/{name}/versions/{version}", response_model=VersionDetail)
async def read_version(
    name: str,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION, description="Version number.")],
    registry: RegistryDep,
    _: ReadAccess,
) -> VersionDetail:
    """A version's manifest: architecture, scaling, data fingerprint, training history and metrics."""
    model, manifest = await run_blocking(registry.version_manifest, name, version)
    return VersionDetail(
        name=name,
        version=version,
        aliases=model.aliases_of(version),
        loses_to=manifest.metrics.loses_to,
        manifest=manifest.public(),
    )


@router.delete("/{name}/versions/{version}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_version(
    name: str,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION, description="Version number.")],
    services: ServicesDep,
    _: WriteAccess,
) -> Response:
    """Delete a version (its files too); 409 while an alias points at it. Its number is never reused. Streams
    pinned to it keep their points; their next append answers 409 until they are pointed at another version."""
    await run_blocking(services.registry.delete_version, name, version)
    await services.pool.refresh()  # a default route that served the deleted version moves on now
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{name}/aliases/{alias}", response_model=AliasResponse)
async def update_alias(
    name: str, alias: str, body: AliasRequest, registry: RegistryDep, _: AdminAccess
) -> AliasResponse:
    """Point an alias at a version; servers switch within seconds. `production` answers 409 for a version
    that loses to a naive baseline on its test split, unless the body says `"force": true`."""
    await run_blocking(registry.set_alias, name, alias, body.version, force=body.force)
    return AliasResponse(name=name, alias=alias, version=body.version)


@router.delete("/{name}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_alias(name: str, alias: str, registry: RegistryDep, _: AdminAccess) -> Response:
    """Remove an alias."""
    await run_blocking(registry.delete_alias, name, alias)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
