"""Bearer-key authentication and role checks (the FastAPI dependencies on top are in `app.api.deps`). The key
may also come in `Ocp-Apim-Subscription-Key`, as Azure Anomaly Detector's clients send it.

With no active key in the registry every caller is an anonymous admin, but only while the configured host is
loopback: the server refuses to start key-less elsewhere, and if the last key is revoked later a non-loopback
server rejects everyone instead of opening up. Key lookups are answered from the KeyStore's short-lived cache
and only reach the database (in a worker thread, off the event loop) when the cache has no answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from fastapi.security import HTTPBearer

from app.concurrency import run_blocking
from app.errors import TswatchError
from app.hosts import is_loopback
from app.keys.cache import Miss
from app.keys.roles import Role
from app.keys.store import KeyInfo, KeyStore

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


SUBSCRIPTION_KEY_HEADER: Final = "Ocp-Apim-Subscription-Key"  # where Azure's clients send the key


def request_key(authorization: str | None, subscription_key: str | None = None) -> str:
    """The key of a request: its `Authorization: Bearer` token, else its `Ocp-Apim-Subscription-Key` (as
    Azure Anomaly Detector's clients send it); raises AuthenticationError when it has neither."""
    if (not authorization or not authorization.strip()) and subscription_key and subscription_key.strip():
        return subscription_key.strip()
    return bearer_token(authorization)


def bearer_token(authorization: str | None) -> str:
    """The key in an `Authorization: Bearer <key>` header; raises AuthenticationError otherwise."""
    if not authorization or not authorization.strip():
        raise AuthenticationError(
            "missing Authorization header; send `Authorization: Bearer <API key>` "
            f"(or `{SUBSCRIPTION_KEY_HEADER}: <API key>`)"
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("malformed Authorization header; expected `Bearer <API key>`")
    return token.strip()


async def _cached_or_thread(cached: T | Miss, compute: Callable[..., T], *args: Any) -> T:
    return await run_blocking(compute, *args) if isinstance(cached, Miss) else cached


async def authenticate(
    keys: KeyStore, host: str, authorization: str | None, subscription_key: str | None = None
) -> Principal:
    """The caller of a request with these key headers (`request_key`), on a server configured for `host`."""
    if not await _cached_or_thread(keys.cached_has_active_keys(), keys.has_active_keys):
        # Revoking the last key of a server listening beyond loopback must lock it, not open it.
        if is_loopback(host):
            return ANONYMOUS
        raise AuthenticationError(
            "no active API keys exist; create one with `tswatch keys create --role admin`"
        )
    token = request_key(authorization, subscription_key)
    info: KeyInfo | None = await _cached_or_thread(keys.cached_authenticate(token), keys.authenticate, token)
    if info is None:
        raise AuthenticationError("the API key is unknown or has been revoked", invalid_token=True)
    return Principal(key_id=info.key_id, role=info.role, name=info.name)


def authorize(principal: Principal, role: Role) -> Principal:
    """`principal` when its role is at least `role`; PermissionDeniedError otherwise."""
    if not principal.role.allows(role):
        raise PermissionDeniedError(role, principal.role, principal.key_id)
    return principal
