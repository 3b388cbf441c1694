"""Typed dependencies for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.services import Services
from app.registry.store import Registry


async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_registry(services: Annotated[Services, Depends(get_services)]) -> Registry:
    return services.registry


ServicesDep = Annotated[Services, Depends(get_services)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
