import asyncio
import json
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from app.api.limits import BodySizeLimitMiddleware
from app.api.problems import install_problem_handlers, problem_response
from app.errors import ConflictError

PROBLEM = "application/problem+json"
LIMIT = 1024

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Series(BaseModel):
    values: list[FiniteFloat]


class Batch(BaseModel):
    series: list[Series]


def build_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=LIMIT)

    @app.post("/values")
    async def values(series: Series) -> dict:
        return {"n": len(series.values)}

    @app.post("/batch")
    async def batch(body: Batch) -> dict:
        return {"n": len(body.series)}

    @app.post("/raw")
    async def raw(request: Request) -> dict:
        return {"n": len(await request.body())}

    @app.get("/conflict")
    async def conflict() -> dict:
        raise ConflictError("model demo already exists", fields={"model": "demo"})

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("secret internals at /srv/tswatch")

    return app


@pytest.fixture(scope="module")
def client(live_server):
    with live_server(build_app()) as url, httpx.Client(base_url=url) as client:
        yield client


def strict_json(text: str):
    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = strict_json(response.text)
    assert body["type"] == f"urn:tswatch:problem:{slug}"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def post_json(client, path: str, raw: bytes, **kwargs) -> httpx.Response:
    return client.post(path, content=raw, headers={"Content-Type": "application/json"}, **kwargs)


def test_non_finite_numbers_are_reported_without_echoing_them(client):
    response = post_json(client, "/values", b'{"values": [1, NaN, 2, Infinity, -Infinity, 1e309]}')
    body = assert_problem(response, 422, "validation-error")
    for junk in ("NaN", "Infinity", "1e309", "inf"):
        assert junk not in response.text
    assert [error["field"] for error in body["errors"]] == ["values.1", "values.3", "values.4", "values.5"]
    assert {error["type"] for error in body["errors"]} == {"finite_number"}
    assert all(set(error) == {"field", "message", "type"} for error in body["errors"])
    assert body["detail"].startswith("4 invalid fields: values.1: Input should be a finite number; ")
    assert body["detail"].endswith("; and 1 more")


def test_nested_locations_are_dotted_without_body(client):
    response = post_json(client, "/batch", b'{"series": [{"values": [1]}, {"values": [NaN]}, {}]}')
    body = assert_problem(response, 422, "validation-error")
    assert [(e["field"], e["type"]) for e in body["errors"]] == [
        ("series.1.values.0", "finite_number"),
        ("series.2.values", "missing"),
    ]
    assert body["detail"].startswith("2 invalid fields: series.1.values.0: Input should be a finite number;")


def test_malformed_json_is_a_400_problem(client):
    response = post_json(client, "/values", b'{"values": [1, 2,')
    body = assert_problem(response, 400, "invalid-json")
    assert body["detail"].startswith("request body is not valid JSON")
    assert "errors" not in body


def test_domain_errors_keep_their_status_and_fields(client):
    body = assert_problem(client.get("/conflict"), 409, "conflict")
    assert body["detail"] == "model demo already exists"
    assert body["model"] == "demo"


def test_unknown_route_is_a_404_problem(client):
    body = assert_problem(client.get("/nowhere"), 404, "not-found")
    assert "/nowhere" in body["detail"]


def test_wrong_method_is_a_405_problem_with_allow(client):
    response = client.get("/values")
    body = assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "POST"
    assert "GET" in body["detail"] and "POST" in body["detail"]


def test_unhandled_errors_are_a_500_problem_without_internals(client):
    response = client.get("/boom")
    body = assert_problem(response, 500, "internal-error")
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert body["title"] == "Internal server error"
    assert response.headers["connection"] == "close", "uvicorn drops the connection after an unhandled error"


def test_problem_response_sanitises_and_protects_core_members():
    response = problem_response(
        400, "Bad", "detail", "bad", fields={"status": 999, "ratio": float("nan"), "where": {1: float("inf")}}
    )
    body = strict_json(response.body.decode())
    assert body == {
        "type": "urn:tswatch:problem:bad",
        "title": "Bad",
        "status": 400,
        "detail": "detail",
        "ratio": None,
        "where": {"1": None},
    }
    assert response.media_type == PROBLEM


def test_declared_oversized_body_is_refused_with_413(client):
    response = post_json(client, "/values", b'{"values": [' + b"1," * LIMIT + b"1]}")
    body = assert_problem(response, 413, "body-too-large")
    assert body["max_body_bytes"] == LIMIT


@pytest.mark.parametrize("path", ["/values", "/raw"])
def test_chunked_oversized_body_is_refused_with_413(client, path):
    def chunks():
        yield b'{"values": ['
        for _ in range(LIMIT // 8):
            yield b"1,2,3,4,"
        yield b"5]}"

    response = client.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413, "body-too-large")


@pytest.mark.parametrize("chunked", [False, True])
def test_bodies_under_the_limit_pass(client, chunked):
    raw = b'{"values": [' + b"1," * 100 + b"1]}"
    content = iter([raw[:50], raw[50:]]) if chunked else raw
    response = client.post("/values", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"n": 101}


def asgi_call(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[list[dict], list[int]]:
    """Drives the middleware directly, for framing a real HTTP server would refuse to forward."""
    sent: list[dict] = []
    seen: list[int] = []

    async def downstream(scope, receive, send):
        while True:
            message = await receive()
            seen.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    asyncio.run(BodySizeLimitMiddleware(downstream, 10)(scope, receive, send))
    return sent, seen


def test_invalid_content_length_is_a_400():
    sent, seen = asgi_call([(b"content-length", b"ten")], [b"x"])
    assert sent[0]["status"] == 400
    assert seen == []


def test_conflicting_content_lengths_are_a_400():
    sent, _ = asgi_call([(b"content-length", b"1"), (b"content-length", b"2")], [b"x"])
    assert sent[0]["status"] == 400


def test_a_lying_content_length_is_caught_while_reading():
    sent, seen = asgi_call([(b"content-length", b"4")], [b"1234", b"5678", b"9abc"])
    assert sent[0]["status"] == 413
    assert b"body-too-large" in sent[1]["body"]
    assert seen == [4, 4], "the downstream app never saw the chunk that crossed the limit"


def test_declared_length_refusal_reads_nothing():
    sent, seen = asgi_call([(b"content-length", b"11")], [b"0123456789a"])
    assert sent[0]["status"] == 413
    assert seen == []


def test_a_body_exactly_at_the_limit_passes():
    sent, seen = asgi_call([], [b"01234", b"56789"])
    assert sent[0]["status"] == 200
    assert seen == [5, 5]
