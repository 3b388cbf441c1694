"""Request body size limit as pure ASGI middleware.

A declared `Content-Length` over the limit is refused before any byte of the body is read. Otherwise (chunked
bodies, or a Content-Length that lies) the bytes are counted as the application receives them; crossing the
limit raises inside the application's `receive`. Frameworks may swallow or re-wrap that exception (FastAPI
turns body-read errors into a 400), so the guard also intercepts `send`: once the limit was crossed, whatever
the application answers is replaced by the 413, provided the application had not started its response.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import AZURE_PATH_PREFIX, azure_error_response, problem_response
from app.azure.errors import code_for_status

CLOSE: Final = {"Connection": "close"}


class _BodyTooLarge(Exception):
    pass


class _InvalidContentLength(Exception):
    pass


def declared_length(scope: Scope) -> int | None:
    values = {value.strip() for name, value in scope.get("headers", ()) if name.lower() == b"content-length"}
    if not values:
        return None
    if len(values) > 1:
        raise _InvalidContentLength("conflicting Content-Length headers")
    value = values.pop()
    if not value.isdigit():
        raise _InvalidContentLength("Content-Length is not a non-negative integer")
    return int(value)


def _refusal(
    scope: Scope, status: int, title: str, detail: str, slug: str, fields: dict[str, object]
) -> Response:
    """problem+json, or Azure's `{code, message}` on the Azure-compatible paths (as every other error there)."""
    if str(scope.get("path", "")).startswith(AZURE_PATH_PREFIX):
        return azure_error_response(status, code_for_status(status), detail, CLOSE)
    return problem_response(status, title, detail, slug, fields, CLOSE)


async def send_too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    detail = f"the request body exceeds the limit of {limit} bytes"
    response = _refusal(
        scope, 413, "Request body too large", detail, "body-too-large", {"max_body_bytes": limit}
    )
    await response(scope, receive, send)


class _Guard:
    """Per-request state: counts received bytes and withholds the app's answer once the limit is crossed."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        self.scope, self._receive, self._send, self.limit = scope, receive, send, limit
        self.received = 0
        self.exceeded = False
        self.app_started = False
        self.replied = False

    async def receive(self) -> Message:
        if self.exceeded:
            raise _BodyTooLarge
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.exceeded = True
                raise _BodyTooLarge
        return message

    async def send(self, message: Message) -> None:
        if self.exceeded and not self.app_started:
            await self.reply()
            return
        if message["type"] == "http.response.start":
            self.app_started = True
        await self._send(message)

    async def reply(self) -> None:
        if not self.replied:
            self.replied = True
            await send_too_large(self.scope, self._receive, self._send, self.limit)


@dataclass(frozen=True)
class LargerBodies:
    """A route whose bodies may exceed the general limit (an upload): its method, a pattern its whole path
    matches, and its own limit."""

    method: str
    path: re.Pattern[str]
    max_body_bytes: int


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, larger: Sequence[LargerBodies] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger = tuple(larger)

    def limit(self, scope: Scope) -> int:
        """The body limit of this request: its route's own, else the general one."""
        for route in self.larger:
            if scope.get("method") == route.method and route.path.fullmatch(scope.get("path", "")):
                return route.max_body_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            length = declared_length(scope)
        except _InvalidContentLength as error:
            await _bad_length(scope, receive, send, str(error))
            return
        limit = self.limit(scope)
        if length is not None and length > limit:
            await send_too_large(scope, receive, send, limit)
            return
        await self._guarded(scope, receive, send, limit)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        guard = _Guard(scope, receive, send, limit)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            # Anything raised after the limit was crossed (our exception, or a wrapper of it) is a consequence.
            if not guard.exceeded or guard.app_started:
                raise
        if guard.exceeded and not guard.app_started:
            await guard.reply()


async def _bad_length(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
    response = _refusal(scope, 400, "Bad request", reason, "invalid-content-length", {})
    await response(scope, receive, send)
