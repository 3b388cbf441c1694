"""Cursor pagination of the listings: `limit` and `cursor` query parameters, the next page's cursor and link.

A cursor is opaque to clients: URL-safe base64 of a small JSON document naming the listing it belongs to and the
sort key of the last item returned (keyset pagination: a page is "the items after this key", so rows inserted or
deleted meanwhile never shift a page). A cursor that does not decode, or belongs to another listing, is a 422
naming `cursor`. A listing fetches `limit + 1` items; the extra one only says whether a next page exists.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Final, TypeVar

from fastapi import Query, Request, Response

from app.errors import InvalidInputError
from app.timestamps import from_state_iso, to_state_iso

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
MAX_CURSOR_LENGTH: Final = 1024

KeyPart = str | int | datetime  # a part of the sort key of a page's last item (datetimes naive UTC)
T = TypeVar("T")

LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Most items per page ({DEFAULT_LIMIT} by default).")
]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="Opaque cursor of the next page, from the previous page's `next_cursor` or `Link` header.",
    ),
]


class InvalidCursorError(InvalidInputError):
    title = "Invalid cursor"
    slug = "invalid-cursor"


def encode_cursor(listing: str, key: Sequence[KeyPart]) -> str:
    parts = [to_state_iso(part) if isinstance(part, datetime) else part for part in key]
    document = json.dumps({"l": listing, "k": parts}, separators=(",", ":"))
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_cursor(listing: str, cursor: str, types: Sequence[type[KeyPart]]) -> list[KeyPart]:
    """The key in `cursor`, checked to belong to `listing` and to hold values of `types`, in order."""
    try:
        document = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = document["k"] if isinstance(document, dict) and document.get("l") == listing else None
        if isinstance(key, list) and len(key) == len(types):
            return [_part(value, kind) for value, kind in zip(key, types, strict=True)]
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, KeyError):
        pass
    raise InvalidCursorError(
        "cursor is not a cursor of this listing: pass the `next_cursor` (or the `Link` header's URL) of the "
        "previous page unchanged, or leave cursor out for the first page",
        fields={"field": "cursor"},
    )


def _part(value: object, kind: type[KeyPart]) -> KeyPart:
    """One decoded key part of type `kind` (ValueError when it is not one)."""
    if kind is datetime and isinstance(value, str):
        return from_state_iso(value)
    if kind in (str, int) and type(value) is kind:
        return value
    raise ValueError(f"not a {kind.__name__}: {value!r}")


def page(items: Sequence[T], limit: int) -> tuple[list[T], bool]:
    """The first `limit` of `items` (fetched as `limit + 1`) and whether there are more."""
    return list(items[:limit]), len(items) > limit


def link_next(request: Request, response: Response, cursor: str | None) -> None:
    """Add the RFC 8288 `Link: <...>; rel="next"` header (this request's URL with the next cursor)."""
    if cursor is not None:
        url = request.url.include_query_params(cursor=cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'
