"""Request bodies parsed by the API itself, with exactly the 4xx answers FastAPI gives for typed route bodies.

Routes whose bodies are large or hot (`/forecast`, `/detect`) take the raw body instead of a typed parameter,
so the parse can run where it is cheap (off the event loop, or where the model runs). `parse_like_fastapi` then
gives the same RequestValidationError FastAPI would have raised (-> the same problem+json in
`app.api.problems`), and `request_body_openapi` declares the body in the OpenAPI document as FastAPI would.
"""

from __future__ import annotations

import email.message
import json
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.api.problems import invalid_json_error, unparsable_json_reason

Body = TypeVar("Body", bound=BaseModel)


def is_json_media_type(content_type: str | None) -> bool:
    """Whether FastAPI (strict about content types) would parse a body sent with this Content-Type as JSON."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def parse_like_fastapi(model: type[Body], content_type: str | None, body: bytes) -> Body:
    """Parse like FastAPI parses a `model` route body, raising the same RequestValidationError."""
    value: Any = None
    if body and is_json_media_type(content_type):
        value = _load_json(body)
    elif body:
        value = body
    if value is None:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise body_validation_error(error) from None


def body_validation_error(error: ValidationError) -> RequestValidationError:
    """`error` (of a model validated from a request body) as FastAPI's error for that body."""
    errors = error.errors(include_url=False, include_context=False)
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors])


def parse_body(model: type[Body], content_type: str | None, body: bytes) -> Body:
    """`model` from a JSON body by pydantic's JSON parser (fast); any body it refuses is parsed again like
    FastAPI, so a refusal is exactly FastAPI's 4xx (and a body only FastAPI's parse accepts is accepted)."""
    if body and is_json_media_type(content_type):
        try:
            return model.model_validate_json(body)
        except ValidationError:
            pass
    return parse_like_fastapi(model, content_type, body)


def _load_json(body: bytes) -> Any:
    """`json.loads(body)`, its every refusal raised as the 400 FastAPI routes give (`app.api.problems`)."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        problem = {"type": "json_invalid", "loc": ("body", error.pos), "msg": "JSON decode error"}
        raise RequestValidationError([{**problem, "input": {}, "ctx": {"error": error.msg}}]) from None
    except (ValueError, RecursionError) as error:  # not UTF-8, nested too deeply, an integer too long
        reason = unparsable_json_reason(error) or "unreadable"
        raise RequestValidationError([invalid_json_error(reason)]) from None


def request_body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring a required JSON body of `model`, self-contained (nested models inlined: the
    route's models are not otherwise in the document's components)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    inlined = _inline(schema, definitions)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inlined}}}}


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, definitions) for value in node]
    return node
