"""The model registry over HTTP: list, inspect, move aliases."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from app.api.auth import AdminAccess, ReadAccess
from app.api.deps import RegistryDep
from app.api.schemas import (
    MAX_VERSION,
    AliasRequest,
    AliasResponse,
    ModelDetail,
    ModelSummary,
    VersionDetail,
    VersionSummary,
)
from app.registry.store import DEFAULT_ALIAS, ModelInfo

router = APIRouter(prefix="/v1/models", tags=["models"])


def _aliases_of(model: ModelInfo, version: int) -> list[str]:
    return sorted(alias for alias, target in model.aliases.items() if target == version)


def _public_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without bulky calibration samples (kept on disk, summarised here)."""
    public = {key: value for key, value in manifest.items() if key not in {"anomaly"}}
    calibration = manifest.get("anomaly", {}).get("calibration", {})
    public["anomaly"] = {"calibrated_series": sorted(calibration.get("per_series", {}))}
    return public


@router.get("", response_model=list[ModelSummary])
async def list_models(registry: RegistryDep, _: ReadAccess) -> list[ModelSummary]:
    """Every registered model with its versions and aliases."""
    models = await asyncio.to_thread(registry.list_models)
    return [
        ModelSummary(name=m.name, latest_version=m.latest_version, aliases=m.aliases, versions=m.versions)
        for m in models
    ]


@router.get("/{name}", response_model=ModelDetail)
async def read_model(name: str, registry: RegistryDep, _: ReadAccess) -> ModelDetail:
    """One model: versions with test metrics next to the naive baselines, aliases, default version."""
    model = await asyncio.to_thread(registry.get_model, name)
    versions = await asyncio.to_thread(registry.versions, name)
    default = model.aliases.get(DEFAULT_ALIAS, model.latest_version)
    return ModelDetail(
        name=model.name,
        latest_version=model.latest_version,
        aliases=model.aliases,
        versions=model.versions,
        default_version=default,
        version_details=[
            VersionSummary(
                version=v.version,
                created_at=v.created_at,
                aliases=_aliases_of(model, v.version),
                metrics=v.summary.get("metrics", {}),
                baselines=v.summary.get("baselines", {}),
            )
            for v in versions
        ],
    )


@router.get("/{name}/versions/{version}", response_model=VersionDetail)
async def read_version(
    name: str,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION, description="Version number.")],
    registry: RegistryDep,
    _: ReadAccess,
) -> VersionDetail:
    """A version's manifest: architecture, scaling, data fingerprint, training history and metrics."""
    info = await asyncio.to_thread(registry.get_version, name, version)
    manifest = await asyncio.to_thread(registry.read_manifest, info)
    model = await asyncio.to_thread(registry.get_model, name)
    return VersionDetail(
        name=name, version=version, aliases=_aliases_of(model, version), manifest=_public_manifest(manifest)
    )


@router.put("/{name}/aliases/{alias}", response_model=AliasResponse)
async def update_alias(
    name: str, alias: str, body: AliasRequest, registry: RegistryDep, _: AdminAccess
) -> AliasResponse:
    """Point an alias at a version; servers switch within seconds."""
    await asyncio.to_thread(registry.set_alias, name, alias, body.version)
    return AliasResponse(name=name, alias=alias, version=body.version)


@router.delete("/{name}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_alias(name: str, alias: str, registry: RegistryDep, _: AdminAccess) -> Response:
    """Remove an alias."""
    await asyncio.to_thread(registry.delete_alias, name, alias)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
