"""Bearer-key authentication and role checks, as FastAPI dependencies.

With no active key in the registry every caller is an anonymous admin, but only while the configured host is
loopback: the server refuses to start key-less elsewhere, and if the last key is revoked later a non-loopback
server rejects everyone instead of opening up. Key lookups are answered from the KeyStore's short-lived cache
and only reach the database (in a worker thread, off the event loop) when the cache has no answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Annotated, Any, Final, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from app.errors import TswatchError
from app.registry.keys import KeyInfo, KeyStore, Miss, Role

T = TypeVar("T")

REALM: Final = 'Bearer realm="tswatch"'

# Declares the scheme in the OpenAPI document; the header itself is parsed below for precise errors.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer tsw_...`")


class AuthenticationError(TswatchError):
    status = 401
    title = "Authentication required"
    slug = "unauthenticated"

    def __init__(self, detail: str, *, invalid_token: bool = False) -> None:
        super().__init__(detail)
        challenge = f'{REALM}, error="invalid_token"' if invalid_token else REALM
        self.headers: dict[str, str] = {"WWW-Authenticate": challenge}


class PermissionDeniedError(TswatchError):
    status = 403
    title = "Permission denied"
    slug = "forbidden"

    def __init__(self, required: Role, actual: Role, key_id: str | None) -> None:
        who = f"API key {key_id}" if key_id else "this caller"
        super().__init__(
            f"this operation needs role {required.value!r} (or higher); {who} has role {actual.value!r}",
            fields={"required_role": required.value, "key_role": actual.value},
        )
        self.headers: dict[str, str] = {}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key, or (key_id None) the anonymous admin of an open, key-less server."""

    key_id: str | None
    role: Role
    name: str = ""

    @property
    def anonymous(self) -> bool:
        return self.key_id is None


ANONYMOUS: Final = Principal(key_id=None, role=Role.ADMIN, name="anonymous")


def bearer_token(authorization: str | None) -> str:
    """The key in an `Authorization: Bearer <key>` header; raises AuthenticationError otherwise."""
    if not authorization or not authorization.strip():
        raise AuthenticationError("missing Authorization header; send `Authorization: Bearer <API key>`")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("malformed Authorization header; expected `Bearer <API key>`")
    return token.strip()


async def _cached_or_thread(cached: T | Miss, compute: Callable[..., T], *args: Any) -> T:
    return await run_in_threadpool(compute, *args) if isinstance(cached, Miss) else cached


@lru_cache(maxsize=64)
def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def authenticate(request: Request) -> Principal:
    services = request.app.state.services
    keys: KeyStore = services.keys
    if not await _cached_or_thread(keys.cached_has_active_keys(), keys.has_active_keys):
        # Revoking the last key of a server listening beyond loopback must lock it, not open it.
        if is_loopback(services.settings.host):
            return ANONYMOUS
        raise AuthenticationError(
            "no active API keys exist; create one with `tswatch keys create --role admin`"
        )
    token = bearer_token(request.headers.get("authorization"))
    info: KeyInfo | None = await _cached_or_thread(keys.cached_authenticate(token), keys.authenticate, token)
    if info is None:
        raise AuthenticationError("the API key is unknown or has been revoked", invalid_token=True)
    return Principal(key_id=info.key_id, role=info.role, name=info.name)


@cache
def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers whose role is at least `role` (cached, so one per role)."""

    async def dependency(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    ) -> Principal:
        principal = await authenticate(request)
        if not principal.role.allows(role):
            raise PermissionDeniedError(role, principal.role, principal.key_id)
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


ReadAccess = Annotated[Principal, Depends(require_role(Role.READ))]
WriteAccess = Annotated[Principal, Depends(require_role(Role.WRITE))]
AdminAccess = Annotated[Principal, Depends(require_role(Role.ADMIN))]
