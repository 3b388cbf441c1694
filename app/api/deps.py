"""Typed dependencies for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.services import Services
from app.registry.store import Registry
from app.serving.pool import ModelPool


async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_registry(services: Annotated[Services, Depends(get_services)]) -> Registry:
    return services.registry


async def get_pool(services: Annotated[Services, Depends(get_services)]) -> ModelPool:
    return services.pool


ServicesDep = Annotated[Services, Depends(get_services)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
PoolDep = Annotated[ModelPool, Depends(get_pool)]
