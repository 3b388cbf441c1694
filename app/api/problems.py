"""RFC 9457 problem details: every error the API returns is `application/problem+json`.

Bodies never echo request input (validation errors drop pydantic's `input`), never carry URL credentials (every
string is passed through `app.redact.scrub_urls`, a backstop behind the messages that redact them), and are
always strict JSON: NaN and infinities, which Python's json would happily write, are replaced before encoding.

On the Azure-compatible paths (`/anomalydetector/...`) every error is instead Azure's body `{code, message}` with
its error code (also in the `x-ms-error-code` header, as Azure sends it): an `AzureError`'s own code, the code
of the invalid field for request validation, or the code of the HTTP status otherwise (`app.azure.errors`).
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from app.azure.errors import INVALID_JSON_FORMAT, AzureError, code_for_field, code_for_status
from app.errors import TswatchError
from app.redact import scrub_urls

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:tswatch:problem:"
MAX_LISTED_ERRORS: Final = 100
MAX_SUMMARISED_ERRORS: Final = 3
_CORE_MEMBERS: Final = ("type", "title", "status", "detail")
AZURE_PATH_PREFIX: Final = "/anomalydetector/"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(
            sanitise(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")


def sanitise(value: Any) -> Any:
    """A strict-JSON-safe copy: non-finite floats become None, unknown objects their str(), and strings lose
    any URL credentials."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, int | bool):
        return value
    if isinstance(value, str):
        return scrub_urls(value)
    if isinstance(value, Mapping):
        return {scrub_urls(str(key)): sanitise(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [sanitise(item) for item in value]
    return scrub_urls(str(value))


def problem_response(
    status: int,
    title: str,
    detail: str,
    slug: str,
    fields: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response; `fields` adds members (e.g. `errors`) but cannot override the core ones."""
    body: dict[str, Any] = {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    for key, value in (fields or {}).items():
        if key not in _CORE_MEMBERS:
            body[key] = value
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


class AzureErrorResponse(ProblemResponse):
    media_type = "application/json"


def is_azure_path(request: Request) -> bool:
    return request.url.path.startswith(AZURE_PATH_PREFIX)


def azure_error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Azure's error body `{code, message}`, its code also in the `x-ms-error-code` header."""
    return AzureErrorResponse(
        {"code": code, "message": message},
        status_code=status,
        headers={**(headers or {}), "x-ms-error-code": code},
    )


def status_slug(status: int) -> str:
    return _phrase(status).lower().replace(" ", "-").replace("'", "")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def tswatch_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TswatchError)
    headers: Mapping[str, str] = getattr(exc, "headers", None) or {}
    if is_azure_path(request):
        code = exc.code if isinstance(exc, AzureError) else code_for_status(exc.status)
        return azure_error_response(exc.status, code, exc.detail, headers)
    return problem_response(exc.status, exc.title, exc.detail, exc.slug, exc.fields, headers)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if is_azure_path(request):
        return _azure_validation_error(errors)
    invalid_json = next((error for error in errors if error.get("type") == "json_invalid"), None)
    if invalid_json is not None:
        return _invalid_json_problem(invalid_json)
    if not _is_json(request.headers.get("content-type")) and any(
        tuple(error.get("loc", ())) == ("body",) and error.get("type") != "missing" for error in errors
    ):
        # FastAPI hands a non-JSON body over as raw bytes, which then fails validation as "not an object".
        return problem_response(
            415,
            "Unsupported media type",
            "the request body must be JSON, sent with `Content-Type: application/json`",
            "unsupported-media-type",
        )
    listed = [_describe(error) for error in errors]
    fields: dict[str, Any] = {"errors": listed[:MAX_LISTED_ERRORS]}
    if len(listed) > MAX_LISTED_ERRORS:
        fields["errors_truncated"] = True
    return problem_response(422, "Invalid request", _summary(listed), "validation-error", fields)


def _azure_validation_error(errors: list[Any]) -> Response:
    """Azure's answer to an invalid body: 400 with the code of the first invalid field."""
    first = errors[0] if errors else {}
    location = tuple(first.get("loc", ()))
    location = location[1:] if location[:1] == ("body",) else location
    code = code_for_field(location, str(first.get("type", "")))
    if code == INVALID_JSON_FORMAT:
        return azure_error_response(400, code, "the request body must be a JSON object")
    return azure_error_response(400, code, _summary([_describe(error) for error in errors]))


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _describe(error: Mapping[str, Any]) -> dict[str, str]:
    """One error as field/message/type, deliberately without pydantic's `input` (may be NaN or huge)."""
    location = [str(part) for part in error.get("loc", ())]
    if location[:1] == ["body"]:
        location = location[1:]
    return {
        "field": ".".join(location) or "body",
        "message": str(error.get("msg", "invalid value")),
        "type": str(error.get("type", "value_error")),
    }


def _summary(errors: list[dict[str, str]]) -> str:
    count = len(errors)
    shown = "; ".join(f"{error['field']}: {error['message']}" for error in errors[:MAX_SUMMARISED_ERRORS])
    more = f"; and {count - MAX_SUMMARISED_ERRORS} more" if count > MAX_SUMMARISED_ERRORS else ""
    noun = "field" if count == 1 else "fields"
    return f"{count} invalid {noun}: {shown}{more}"


def unparsable_json_reason(error: BaseException) -> str | None:
    """Why `json.loads` refused a body other than by a syntax error (JSONDecodeError), or None if `error` is
    not such a refusal: bytes that are not UTF-8, nesting beyond the recursion limit, an over-long integer."""
    if isinstance(error, json.JSONDecodeError):
        return None
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, ValueError):  # the only other ValueError: int() refusing a long digit string
        return f"an integer has more than {sys.get_int_max_str_digits()} digits"
    return None


def invalid_json_error(reason: str) -> dict[str, Any]:
    """The RequestValidationError entry of a body that is not JSON, answered by `_invalid_json_problem`."""
    return {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "ctx": {"error": reason}}


def _invalid_json_problem(error: Mapping[str, Any]) -> Response:
    reason = str((error.get("ctx") or {}).get("error", "")).strip()
    location = error.get("loc", ())
    position = location[-1] if location and isinstance(location[-1], int) else None
    where = f" at character {position}" if position is not None else ""
    because = f" ({reason}{where})" if reason else ""
    return problem_response(
        400, "Malformed request body", f"request body is not valid JSON{because}", "invalid-json"
    )


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    # FastAPI turns every failure to read or decode a route's body, except a JSON syntax error, into this 400.
    cause = exc.__cause__
    if status == 400 and isinstance(cause, ClientDisconnect):
        return await client_disconnect_handler(request, cause)
    if status == 400 and cause is not None and (reason := unparsable_json_reason(cause)) is not None:
        if is_azure_path(request):
            return azure_error_response(400, INVALID_JSON_FORMAT, f"the request body is not JSON ({reason})")
        return _invalid_json_problem(invalid_json_error(reason))
    headers = dict(exc.headers or {})
    if status in (204, 304) or status < 200:
        return Response(status_code=status, headers=headers)
    fields: dict[str, Any] = {} if isinstance(exc.detail, str) else {"context": exc.detail}
    detail = _http_detail(request, status, exc.detail, headers)
    if is_azure_path(request):
        return azure_error_response(status, code_for_status(status), detail, headers)
    return problem_response(status, _phrase(status), detail, status_slug(status), fields, headers)


def _http_detail(request: Request, status: int, detail: Any, headers: Mapping[str, str]) -> str:
    generic = not isinstance(detail, str) or detail == _phrase(status)
    if generic and status == 404 and "route" not in request.scope:
        return f"no route matches {request.url.path}"
    if generic and status == 405:
        allowed = headers.get("allow") or headers.get("Allow")
        suffix = f"; allowed: {allowed}" if allowed else ""
        return f"method {request.method} is not allowed on {request.url.path}{suffix}"
    return detail if isinstance(detail, str) else _phrase(status)


async def client_disconnect_handler(request: Request, exc: Exception) -> Response:
    """The client left (or the body deadline of `app.api.connection_limits` cut it, answering 408 itself) before
    its body arrived. Nobody reads this answer (the server drops it; 408 is for the metrics): one log line, no
    traceback, no 500."""
    assert isinstance(exc, ClientDisconnect)
    logger.info(
        "client disconnected before its request body arrived: %s %s", request.method, request.url.path
    )
    return Response(status_code=408)


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette re-raises after this response, and the server then drops the connection: say so up front."""
    logger.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    detail = "the server failed to handle this request; see its log"
    if is_azure_path(request):
        return azure_error_response(500, code_for_status(500), detail, {"Connection": "close"})
    return problem_response(
        500, "Internal server error", detail, "internal-error", headers={"Connection": "close"}
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TswatchError, tswatch_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(ClientDisconnect, client_disconnect_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
