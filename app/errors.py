"""Domain exceptions that carry their HTTP status; the API maps them to problem+json in one handler."""

from __future__ import annotations

from typing import Any


class TswatchError(Exception):
    status: int = 400
    title: str = "Bad request"
    slug: str = "bad-request"

    def __init__(self, detail: str, *, fields: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields or {}


class NotFoundError(TswatchError):
    status = 404
    title = "Not found"
    slug = "not-found"


class ConflictError(TswatchError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class InvalidInputError(TswatchError):
    status = 422
    title = "Invalid input"
    slug = "invalid-input"


class UnavailableError(TswatchError):
    status = 503
    title = "Service unavailable"
    slug = "unavailable"


class PayloadTooLargeError(TswatchError):
    status = 413
    title = "Payload too large"
    slug = "payload-too-large"
